"""Conv, ConvTranspose and BatchNormalization: the convolutional front ends of streaming models.

A Conv with constant filters becomes one CONV instruction (see kernels.conv_f32); a
BatchNormalization that is its only reader is folded into its filters and bias at load time (one
scale per output channel, so int8 filters stay int8). A ConvTranspose is the Conv of its input
spread out by the stride (an indexed copy with zeros between the samples and around them) with its
filters flipped and the channel axes swapped. A BatchNormalization on its own is a per-channel
affine map (two BINARY instructions).
"""

import math

import numpy as np

from .. import isa
from ..graph import attribute
from ..quantized import QuantizedWeight
from ..tensor import Tensor
from .elementwise import UNARY as ACTIVATION_OPS
from .elementwise import activation_operand, emit_binary
from .recurrent import text

AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")
IDENTITY = [isa.ACTIVATION_KIND.AFFINE, 0]  # the act operand of a CONV without one (activate=0: never read)


def _ints(ctx, node, name, spatial, default, minimum):
    """A per-spatial-axis int attribute: ``spatial`` values, each >= minimum."""
    values = attribute(node, name, [default] * spatial)
    if len(values) != spatial or any(v < minimum for v in values):
        ctx.fail(node, f"attribute '{name}'={values} must hold {spatial} values >= {minimum}")
    return [int(v) for v in values]


def _geometry(ctx, node, x_shape, w_shape):
    """(kernel, strides, dilations, begin pads, output dims) of a Conv from its attributes."""
    spatial = len(x_shape) - 2
    kernel = list(w_shape[2:])
    declared = attribute(node, "kernel_shape", kernel)
    if list(declared) != kernel:
        ctx.fail(node, f"attribute 'kernel_shape'={declared} does not match W of shape {list(w_shape)}")
    strides = _ints(ctx, node, "strides", spatial, 1, 1)
    dilations = _ints(ctx, node, "dilations", spatial, 1, 1)
    auto_pad = text(attribute(node, "auto_pad", "NOTSET"))
    if auto_pad not in AUTO_PADS:
        ctx.fail(node, f"attribute 'auto_pad'='{auto_pad}' is not one of {', '.join(AUTO_PADS)}")
    pads = _ints(ctx, node, "pads", 2 * spatial, 0, 0)
    if auto_pad != "NOTSET" and "pads" in {a.name for a in node.attribute} and any(pads):
        ctx.fail(node, f"attribute 'pads' is given with auto_pad='{auto_pad}'; ONNX allows one of them")
    begin, out = [], []
    for axis in range(spatial):
        size, reach = x_shape[2 + axis], dilations[axis] * (kernel[axis] - 1) + 1
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            count = -(-size // strides[axis])
            total = max(0, (count - 1) * strides[axis] + reach - size)
            first = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
            begin.append(first)
            out.append(count)
            continue
        first, last = (0, 0) if auto_pad == "VALID" else (pads[axis], pads[spatial + axis])
        span = size + first + last - reach
        if span < 0:
            ctx.fail(node, f"attribute 'kernel_shape'={kernel} (dilations {dilations}) is wider than the "
                           f"padded input of shape {list(x_shape)}")
        begin.append(first)
        out.append(span // strides[axis] + 1)
    return kernel, strides, dilations, begin, out


def _filters(ctx, node, w, b):
    """W and B checked: W constant of rank 3 or 4, B constant (c_out,) or absent."""
    if isinstance(w, Tensor) or isinstance(b, Tensor):
        ctx.fail(node, "W and B must be constant: the runtime needs the filters in the file")
    if w is None or len(w.shape) not in (3, 4):
        ctx.fail(node, f"W has shape {None if w is None else list(w.shape)}; 1-D and 2-D convolutions "
                       f"(W of rank 3 or 4) are supported")
    return w, None if b is None else np.asarray(b, np.float32)


def lower_conv(ctx, node, inputs):
    x, w, b = (list(inputs) + [None, None])[:3]
    w, b = _filters(ctx, node, w, b)
    if not isinstance(x, Tensor) or len(x.shape) != len(w.shape):
        ctx.fail(node, f"X of shape {list(getattr(x, 'shape', ()))} does not match W of shape {list(w.shape)}")
    group = attribute(node, "group", 1)
    c_out, c_in = w.shape[0], x.shape[1]
    if group < 1 or c_in % group or c_out % group or w.shape[1] * group != c_in:
        ctx.fail(node, f"attribute 'group'={group} does not divide X's {c_in} channels into W {list(w.shape)}")
    if b is not None and b.shape != (c_out,):
        ctx.fail(node, f"B has shape {list(b.shape)}, expected [{c_out}]")
    kernel, strides, dilations, begin, out = _geometry(ctx, node, x.shape, w.shape)
    w, kernel, begin = _live_taps(w, x.shape[2:], kernel, strides, dilations, begin, out)
    w, b, batch_norm = _fold_batch_norm(ctx, node, w, b, c_out)
    last = batch_norm or node
    activation = ctx.only_use(last.output[0])
    if activation is None or activation.op_type not in ACTIVATION_OPS or activation.input[0] != last.output[0]:
        activation = None
    y = _emit_conv(ctx, x, w, b, group, kernel, strides, dilations, begin, out, (activation or last).output[0],
                   activation)
    if batch_norm is not None:
        ctx.absorb(batch_norm, y)
    if activation is not None:
        ctx.absorb(activation, y)
    return [y]


def _emit_conv(ctx, x, w, b, group, kernel, strides, dilations, begin, out, output=None, activation=None) -> Tensor:
    """One CONV instruction; 1-D convolutions run as 2-D ones of height 1. ``output``: the name
    of the result; when every reader of it is a Slice of constant parameters (an STFT as a Conv
    whose first frame is dropped, as Silero VAD's), only the output positions they read are
    computed, and the Slices are absorbed: their results are views of Y where contiguous (so
    Silero's real and imaginary halves are not copied out). ``activation``: a node of
    ACTIVATION_OPS applied to the result in the same instruction."""
    c_out = w.shape[0]
    shape, slices = x.shape, None
    first, end = 0, out[-1]
    if len(kernel) == 1:
        shape, kernel, strides, dilations, begin = ((x.shape[0], x.shape[1], 1, x.shape[2]), [1, *kernel],
                                                    [1, *strides], [1, *dilations], [0, *begin])
        slices = _slices_read(ctx, output, (x.shape[0], c_out, out[0])) if output is not None else None
        if slices:
            read = np.concatenate([np.ravel(held) for _, held in slices]) % out[0]
            first, end = (int(read.min()), int(read.max()) + 1) if read.size else (0, out[0])
    y = ctx.new_tensor((x.shape[0], c_out, *out[:-1], end - first))
    ctx.builder.emit(isa.CONV, x=x.offset, y=y.offset, batch=shape[0], c_in=shape[1], in_h=shape[2],
                     in_w=shape[3], c_out=c_out, out_h=1 if len(out) == 1 else out[0], out_w=end - first,
                     group=group, k_h=kernel[0], k_w=kernel[1], stride_h=strides[0], stride_w=strides[1],
                     dilation_h=dilations[0], dilation_w=dilations[1], pad_top=begin[0],
                     pad_left=begin[1] - first * strides[1], y_width=math.prod(y.shape[2:]),
                     w=ctx.builder.matrix(_as_matrix(w), out_axis=0), b=-1 if b is None else ctx.builder.constant(b),
                     activate=int(activation is not None),
                     act=activation_operand(ctx, activation) if activation is not None else IDENTITY,
                     rows=1 if ctx.lean else math.prod(y.shape[2:]))
    for user, held in slices or []:  # element f of the full result is Y's (f // width, f % width - first)
        ctx.absorb(user, ctx.from_addresses(y.offset + held // out[0] * (end - first) + held % out[0] - first))
    return y


def _slices_read(ctx, name, shape) -> list | None:
    """[(Slice node, the elements of ``name`` (shaped ``shape``) that its result holds, as flat
    indices shaped like that result)] when every reader of ``name`` is a Slice of constant
    parameters, else None. The slices are evaluated on element indices, as ONNX defines them."""
    users = ctx.uses(name)
    if not users or any(u.op_type != "Slice" or u.input[0] != name for u in users):
        return None
    index = np.arange(math.prod(shape), dtype=np.int64).reshape(shape)
    held = []
    for user in users:
        params = {n: ctx.values.get(n) for n in user.input[1:] if n}
        if any(v is None or isinstance(v, Tensor) for v in params.values()):
            return None
        held.append((user, np.asarray(ctx.evaluate(user, {name: index, **params})[0], np.int64)))
    return held


def _live_taps(w, sizes, kernel, strides, dilations, begin, out):
    """(W, kernel, begin pads) without the taps that read only padding at every output position:
    their products are all zero (a short input with pads, as Silero's last encoder convs have:
    one position, kernel 3, pads 1, where two taps of three see only zeros)."""
    for axis, size in enumerate(sizes):
        taps = np.arange(kernel[axis])
        at = np.arange(out[axis])[:, None] * strides[axis] + taps * dilations[axis] - begin[axis]
        live = np.flatnonzero(((at >= 0) & (at < size)).any(axis=0))
        if live.size == 0 or live.size == kernel[axis]:
            continue
        first, last = int(live[0]), int(live[-1]) + 1
        index = (slice(None), slice(None)) + tuple(slice(first, last) if a == axis else slice(None)
                                                   for a in range(len(sizes)))
        if isinstance(w, QuantizedWeight) and w.scales_along(0) is not None:
            w = QuantizedWeight(w.q[index], w.scales_along(0), 0)
        else:
            w = np.asarray(w, np.float32)[index]
        kernel = [last - first if a == axis else k for a, k in enumerate(kernel)]
        begin = [b - first * dilations[axis] if a == axis else b for a, b in enumerate(begin)]
    return w, kernel, begin


def _as_matrix(w):
    """W (c_out, c_in/group, *kernel) as (c_out, taps), int8 kept int8 when its scales are per
    output channel or per tensor."""
    if isinstance(w, QuantizedWeight) and w.scales_along(0) is not None:
        return QuantizedWeight(w.q.reshape(w.shape[0], -1), w.scales_along(0), 0)
    return np.asarray(w, np.float32).reshape(w.shape[0], -1)


def _batch_norm_constants(ctx, node, inputs):
    """(scale, shift) per channel of an inference-mode BatchNormalization: y = x * scale + shift."""
    if attribute(node, "training_mode", 0):
        ctx.fail(node, "attribute 'training_mode'=1 computes batch statistics; export the model in eval mode")
    if len(node.output) > 1 and any(node.output[1:]):
        ctx.fail(node, "the running mean and variance outputs exist in training mode only; export in eval mode")
    params = inputs[1:5]
    if len(params) != 4 or any(v is None or isinstance(v, Tensor) for v in params):
        ctx.fail(node, "scale, B, input_mean and input_var must be constant")
    gamma, beta, mean, var = (np.asarray(v, np.float64).ravel() for v in params)
    scale = gamma / np.sqrt(var + attribute(node, "epsilon", 1e-5))
    return scale, beta - mean * scale


def _fold_batch_norm(ctx, node, w, b, c_out):
    """(W, B, the BatchNormalization node) with that node folded in when it is the Conv's only
    reader; else (W, B, None)."""
    bn = ctx.only_use(node.output[0])
    if bn is None or bn.op_type != "BatchNormalization" or bn.input[0] != node.output[0]:
        return w, b, None
    params = [ctx.values.get(name) if name else None for name in bn.input]
    if any(v is None or isinstance(v, Tensor) for v in params[1:5]) or len(params) != 5 \
            or np.size(params[1]) != c_out:
        return w, b, None
    scale, shift = _batch_norm_constants(ctx, bn, params)
    bias = (np.zeros(c_out) if b is None else b.astype(np.float64)) * scale + shift
    per_channel = scale.reshape(-1, *[1] * (len(w.shape) - 1))
    if isinstance(w, QuantizedWeight) and w.scales_along(0) is not None:
        w = QuantizedWeight(w.q, (w.scales_along(0) * scale).astype(np.float32), 0)
    else:
        w = (np.asarray(w, np.float64) * per_channel).astype(np.float32)
    return w, bias.astype(np.float32), bn


def lower_batch_norm(ctx, node, inputs):
    x = inputs[0]
    scale, shift = _batch_norm_constants(ctx, node, inputs)
    if len(x.shape) < 2 or scale.size != x.shape[1]:
        ctx.fail(node, f"{scale.size} channels of parameters for X of shape {list(x.shape)}")
    per_channel = (1, -1) + (1,) * (len(x.shape) - 2)
    y = emit_binary(ctx, node, isa.BINARY_FUNCTION.MUL, x, scale.astype(np.float32).reshape(per_channel))
    return [emit_binary(ctx, node, isa.BINARY_FUNCTION.ADD, y, shift.astype(np.float32).reshape(per_channel))]


def lower_conv_transpose(ctx, node, inputs):
    """ConvTranspose = Conv over X spread by the stride (stride - 1 zeros between samples,
    dilation * (kernel - 1) - pad zeros around) with W flipped and (c_in, c_out/group) swapped
    per group, stride 1."""
    x, w, b = (list(inputs) + [None, None])[:3]
    w, b = _filters(ctx, node, w, b)
    if not isinstance(x, Tensor) or len(x.shape) != len(w.shape):
        ctx.fail(node, f"X of shape {list(getattr(x, 'shape', ()))} does not match W of shape {list(w.shape)}")
    spatial, group = len(x.shape) - 2, attribute(node, "group", 1)
    c_in = x.shape[1]
    if group < 1 or c_in % group or w.shape[0] != c_in:
        ctx.fail(node, f"attribute 'group'={group} does not fit X's {c_in} channels and W {list(w.shape)}")
    kernel = list(w.shape[2:])
    declared = attribute(node, "kernel_shape", kernel)
    if list(declared) != kernel:
        ctx.fail(node, f"attribute 'kernel_shape'={declared} does not match W of shape {list(w.shape)}")
    strides = _ints(ctx, node, "strides", spatial, 1, 1)
    dilations = _ints(ctx, node, "dilations", spatial, 1, 1)
    extra = _ints(ctx, node, "output_padding", spatial, 0, 0)
    crops = _transpose_crops(ctx, node, x.shape[2:], kernel, strides, dilations, extra)
    c_out_g = w.shape[1]
    if b is not None and b.shape != (c_out_g * group,):
        ctx.fail(node, f"B has shape {list(b.shape)}, expected [{c_out_g * group}]")
    # W (c_in, c_out/group, *k) -> (c_out, c_in/group, *k), flipped along every spatial axis
    wf = np.asarray(w, np.float32).reshape(group, c_in // group, c_out_g, *kernel)
    wf = np.flip(wf.swapaxes(1, 2), axis=tuple(range(3, 3 + spatial))).reshape(group * c_out_g, c_in // group, *kernel)
    spread = _spread(ctx, x, strides, [dilations[a] * (kernel[a] - 1) for a in range(spatial)], crops)
    return [_emit_conv(ctx, spread, np.ascontiguousarray(wf), b, group, kernel, [1] * spatial, dilations,
                       [0] * spatial, [size for _, size in crops])]


def _transpose_crops(ctx, node, sizes, kernel, strides, dilations, extra):
    """[(first, size)] per spatial axis: the part of the full transposed output (every position an
    input sample reaches, then output_padding) that is the output, from pads, auto_pad or output_shape."""
    spatial = len(sizes)
    full = [(sizes[a] - 1) * strides[a] + extra[a] + dilations[a] * (kernel[a] - 1) + 1 for a in range(spatial)]
    auto_pad = text(attribute(node, "auto_pad", "NOTSET"))
    if auto_pad not in AUTO_PADS:
        ctx.fail(node, f"attribute 'auto_pad'='{auto_pad}' is not one of {', '.join(AUTO_PADS)}")
    shape = attribute(node, "output_shape", None)
    if shape is not None or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        target = list(shape)[-spatial:] if shape is not None else [sizes[a] * strides[a] for a in range(spatial)]
        if len(target) != spatial or any(not 0 < t <= f for t, f in zip(target, full)):
            ctx.fail(node, f"attribute 'output_shape'={shape} is not within the full output {full}")
        totals = [f - t for f, t in zip(full, target)]  # split as the spec says: the odd one first
        if auto_pad == "SAME_UPPER":  # except for SAME_UPPER
            return [(total // 2, t) for total, t in zip(totals, target)]
        return [(total - total // 2, t) for total, t in zip(totals, target)]
    pads = [0] * (2 * spatial) if auto_pad == "VALID" else _ints(ctx, node, "pads", 2 * spatial, 0, 0)
    crops = [(pads[a], full[a] - pads[a] - pads[spatial + a]) for a in range(spatial)]
    if any(size <= 0 for _, size in crops):
        ctx.fail(node, f"attribute 'pads'={pads} remove the whole output {full}")
    return crops


def _spread(ctx, x: Tensor, strides, borders, crops) -> Tensor:
    """X with stride - 1 zeros between its samples and ``borders`` zeros around them, cut to what a
    stride-1 Conv needs for the output ``crops``: one indexed copy whose zeros read one zero cell."""
    zero = ctx.resident(np.zeros(1, np.float32))
    index = []
    for a, (first, size) in enumerate(crops):
        n = x.shape[2 + a]
        position = np.arange(first, first + size + borders[a]) - borders[a]  # in the unpadded spread input
        inside = (position >= 0) & (position % strides[a] == 0) & (position // strides[a] < n)
        index.append(np.where(inside, position // strides[a], -1))
    grid = np.ix_(*index)
    taken = x.addresses()[(slice(None), slice(None), *[np.maximum(i, 0) for i in grid])]
    inside = np.logical_and.reduce([i >= 0 for i in np.broadcast_arrays(*grid)])
    return ctx.from_addresses(np.where(inside, taken, zero.offset))


HANDLERS = {"Conv": lower_conv, "ConvTranspose": lower_conv_transpose, "BatchNormalization": lower_batch_norm}
