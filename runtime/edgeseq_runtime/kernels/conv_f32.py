"""ONNX Conv, float32 or int8 filters: ``rows`` output positions at a time, their rows of the
product through the blocked tiles.

Fields: ``isa.CONV``. For each stream, pass of ``rows`` output positions and group, the input
patches the positions read (c_in/group channels x k_h x k_w taps, zeros where the pads are) meet
the group's filters in one ``matvec.project``: with rows = every position (the plan ``load``
makes), the register-blocked tiles load each filter value once for four positions; with rows = 1
(``lower_model(lean=True)``, what codegen makes for microcontrollers) the scratch holds one
position, and a patch that is a run of X as it lies (one input channel per group, one row of
taps, no dilation, no padding reached: an STFT's frames) is read there, not gathered. The
products start from zero and take the bias after their last tap, as ONNX Runtime's do: a sum of
small taps carried next to a large bias would lose their low bits at every tap (Silero VAD's
first encoder conv on near-silence, bias up to 19 against taps summing to 0.1: 1.6e-5 from
float64 against 8e-7). Then the activation when the Conv has one (``activate``: an activation
that read nothing but the Conv's result), and the products are written to their columns of Y.
The tiles compute every output the same way whatever the rows, so ``run`` and ``step`` agree
bit for bit, and both plans give the same numbers. When only some output positions are read
(the planner knows), only those are computed, and Y's channels are then ``y_width`` apart::

    Y[n, co, oh, ow] = B[co] + sum over ci, i, j of
        W[co, ci, i, j] * X[n, g*c_in/group + ci, oh*stride_h + i*dilation_h - pad_top,
                                                  ow*stride_w + j*dilation_w - pad_left]
"""

from numba import njit

from ..isa import CONV
from .activations import apply_encoded
from .config import JIT_OPTIONS
from .linking import call_linked
from .matvec import add_bias, fill, project
from .views import matrix


@njit(**JIT_OPTIONS)
def conv_f32(code, p, w, q, a):
    batch, c_in, in_h, in_w = code[p + CONV.BATCH], code[p + CONV.C_IN], code[p + CONV.IN_H], code[p + CONV.IN_W]
    c_out, out_h, out_w, group = code[p + CONV.C_OUT], code[p + CONV.OUT_H], code[p + CONV.OUT_W], code[p + CONV.GROUP]
    c_in_g, c_out_g = c_in // group, c_out // group
    taps = c_in_g * code[p + CONV.K_H] * code[p + CONV.K_W]
    scratch, width, rows = code[p + CONV.SCRATCH], code[p + CONV.Y_WIDTH], code[p + CONV.ROWS]
    bias = code[p + CONV.B]
    positions, image = out_h * out_w, c_in * in_h * in_w
    for n in range(batch):
        x = code[p + CONV.X] + n * image
        y = code[p + CONV.Y] + n * c_out * width
        for first in range(0, positions, rows):
            count = min(rows, positions - first)
            product = matrix(a, scratch, count, c_out)
            for r in range(count):
                fill(product[r], w, -1)
            for g in range(group):
                start = _patch_in_place(code, p, x, g * c_in_g, first) if rows == 1 else -1
                if start >= 0:
                    patches = matrix(a, start, 1, taps)
                else:
                    patches = matrix(a, scratch + rows * c_out, count, taps)
                    for r in range(count):
                        _gather(code, p, a, x, g * c_in_g, first + r, patches[r])
                call_linked(project, code, p + CONV.W, w, q, c_out, g * c_out_g, patches, product, g * c_out_g, c_out_g)
            for r in range(count):
                add_bias(product[r], w, bias, 0)
                if code[p + CONV.ACTIVATE]:
                    apply_encoded(code, p + CONV.ACT, w, product[r])
                for co in range(c_out):
                    a[y + co * width + first + r] = product[r, co]


@njit(**JIT_OPTIONS)
def _patch_in_place(code, p, x, first, r):
    """Arena offset of output position r's patch of channel ``first`` where it is a run of X
    (one channel per group, one row of taps, no dilation, inside the input), else -1.
    ``x``: the offset of X for this stream."""
    if code[p + CONV.C_IN] != code[p + CONV.GROUP] or code[p + CONV.K_H] != 1 or code[p + CONV.DILATION_W] != 1:
        return -1
    in_h, in_w, out_w = code[p + CONV.IN_H], code[p + CONV.IN_W], code[p + CONV.OUT_W]
    h = (r // out_w) * code[p + CONV.STRIDE_H] - code[p + CONV.PAD_TOP]
    left = (r % out_w) * code[p + CONV.STRIDE_W] - code[p + CONV.PAD_LEFT]
    if h < 0 or h >= in_h or left < 0 or left + code[p + CONV.K_W] > in_w:
        return -1
    return x + (first * in_h + h) * in_w + left


# _gather is a function of its own, not inlined: inlined, Silero VAD's step took 0.5-0.8 µs longer
# (21.1-21.8 against 20.3-21.1, three alternations), for 0.2 s less of an empty cache's start.
@njit(**JIT_OPTIONS)
def _gather(code, p, a, x, first, r, row):
    """row[(ci*k_h + i)*k_w + j] = X[first + ci] at the tap (i, j) of output position r, 0 in the
    padding. ``x``: the offset of X for this stream."""
    k_h, k_w = code[p + CONV.K_H], code[p + CONV.K_W]
    in_h, in_w, out_w = code[p + CONV.IN_H], code[p + CONV.IN_W], code[p + CONV.OUT_W]
    dilation_h, dilation_w = code[p + CONV.DILATION_H], code[p + CONV.DILATION_W]
    top = (r // out_w) * code[p + CONV.STRIDE_H] - code[p + CONV.PAD_TOP]
    left = (r % out_w) * code[p + CONV.STRIDE_W] - code[p + CONV.PAD_LEFT]
    for ci in range(row.size // (k_h * k_w)):
        for i in range(k_h):
            h = top + i * dilation_h
            base = (ci * k_h + i) * k_w
            if h < 0 or h >= in_h:
                for j in range(k_w):
                    row[base + j] = 0.0
                continue
            src = x + ((first + ci) * in_h + h) * in_w
            if dilation_w == 1 and left >= 0 and left + k_w <= in_w:
                for j in range(k_w):  # the common case: a contiguous run of taps, vectorised
                    row[base + j] = a[src + left + j]
            else:
                for j in range(k_w):
                    col = left + j * dilation_w
                    row[base + j] = a[src + col] if 0 <= col < in_w else 0.0
