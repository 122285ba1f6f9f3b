"""ONNX Conv, float32 or int8 filters: a matrix product per group through the blocked tiles.

Fields: ``isa.CONV``. For each stream and each group, the input patches one output position reads
(c_in/group channels x k_h x k_w taps, zeros where the pads are) are gathered into the rows of a
scratch matrix, which then meets the group's filters in one ``matvec.project``: the register-blocked
tiles load each filter value once for four output positions, and the product's order of terms is
fixed, so ``run`` and ``step`` agree bit for bit. Y[c, position] is the product's
[position, c], written with the bias added first; when only some output positions are read
(the planner knows), only those are computed, and Y's channels are then ``y_width`` apart. An
activation that reads nothing but the Conv's result is applied to the product before it is
written (``activate``)::

    Y[n, co, oh, ow] = B[co] + sum over ci, i, j of
        W[co, ci, i, j] * X[n, g*c_in/group + ci, oh*stride_h + i*dilation_h - pad_top,
                                                  ow*stride_w + j*dilation_w - pad_left]
"""

from numba import njit

from ..isa import CONV
from .activations import apply_encoded
from .config import JIT_OPTIONS
from .matvec import fill, project
from .views import matrix


@njit(**JIT_OPTIONS)
def conv_f32(code, p, w, q, a):
    batch, c_in, in_h, in_w = code[p + CONV.BATCH], code[p + CONV.C_IN], code[p + CONV.IN_H], code[p + CONV.IN_W]
    c_out, out_h, out_w, group = code[p + CONV.C_OUT], code[p + CONV.OUT_H], code[p + CONV.OUT_W], code[p + CONV.GROUP]
    k_h, k_w = code[p + CONV.K_H], code[p + CONV.K_W]
    positions, c_in_g, c_out_g = out_h * out_w, c_in // group, c_out // group
    taps = c_in_g * k_h * k_w
    scratch = code[p + CONV.SCRATCH]
    patches = matrix(a, scratch, positions, taps)
    product = matrix(a, scratch + positions * taps, positions, c_out)
    image, width = c_in * in_h * in_w, code[p + CONV.Y_WIDTH]
    for n in range(batch):
        x = matrix(a, code[p + CONV.X] + n * image, c_in * in_h, in_w)
        for r in range(positions):
            fill(product[r], w, code[p + CONV.B])
        for g in range(group):
            _gather(code, p, x, g * c_in_g, c_in_g, in_h, out_w, patches)
            project(code, p + CONV.W, w, q, c_out, g * c_out_g, patches, product, g * c_out_g, c_out_g)
        if code[p + CONV.ACTIVATE]:
            for r in range(positions):
                apply_encoded(code, p + CONV.ACT, w, product[r])
        y = code[p + CONV.Y] + n * c_out * width
        for co in range(c_out):
            for r in range(positions):
                a[y + co * width + r] = product[r, co]


@njit(**JIT_OPTIONS)
def _gather(code, p, x, first, channels, in_h, out_w, patches):
    """patches[position, (ci*k_h + i)*k_w + j] = X[first + ci] at the tap (i, j) of that output
    position, 0 in the padding. ``x`` is X[n] as (c_in * in_h, in_w)."""
    k_h, k_w, in_w = code[p + CONV.K_H], code[p + CONV.K_W], x.shape[1]
    stride_h, stride_w = code[p + CONV.STRIDE_H], code[p + CONV.STRIDE_W]
    dilation_h, dilation_w = code[p + CONV.DILATION_H], code[p + CONV.DILATION_W]
    pad_top, pad_left = code[p + CONV.PAD_TOP], code[p + CONV.PAD_LEFT]
    for r in range(patches.shape[0]):
        top, left = (r // out_w) * stride_h - pad_top, (r % out_w) * stride_w - pad_left
        row = patches[r]
        for ci in range(channels):
            for i in range(k_h):
                h = top + i * dilation_h
                base = (ci * k_h + i) * k_w
                if h < 0 or h >= in_h:
                    for j in range(k_w):
                        row[base + j] = 0.0
                    continue
                src = x[(first + ci) * in_h + h]
                if dilation_w == 1 and left >= 0 and left + k_w <= in_w:
                    for j in range(k_w):  # the common case: a contiguous run of taps, vectorised
                        row[base + j] = src[left + j]
                else:
                    for j in range(k_w):
                        col = left + j * dilation_w
                        row[base + j] = src[col] if 0 <= col < in_w else 0.0
