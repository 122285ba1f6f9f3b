"""Resize, nearest (along any axes), linear and cubic (along one or two, antialiased too), with
constant scales or sizes; Upsample and Resize before opset 11, whose mapping ONNX Runtime fixes as asymmetric, nearest by
floor when enlarging and by ceil when shrinking.

Resize is separable: along each axis, output position j reads input positions with weights that
depend only on that axis's length, scale or size, roi and the node's attributes. Each axis's
weights are read off ONNX's reference Resize (opset 19, which takes every attribute) run on a
one-hot basis of that axis alone, an (n, n) identity resized along its second axis, so every
coordinate_transformation_mode, nearest_mode, cubic_coeff_a, exclude_outside, antialias and
roi is ONNX's own, with no coordinate arithmetic here. At run time nearest is movement (one
indexed copy; an output outside the roi of tf_crop_and_resize reads a cell holding
extrapolation_value), and linear and cubic gather the inputs of each output (2 or 4 along each
axis, more when antialiased shrinking widens the filter: one indexed copy), multiply them by
their weights (BINARY) and sum them (REDUCE).

Two readings differ from ONNX Runtime's, which this follows: align_corners and tf_crop_and_resize
map by the output's length, where the reference takes in * scale (unequal where that is no
integer). Where a scale is not exact in float32 (2.6), ONNX Runtime computes the output's length
and coordinates in float32 and may round them otherwise than ONNX's definition, which this follows.
"""

import math

import numpy as np
import onnx
from onnx.reference import ReferenceEvaluator

from ..errors import first_line
from ..graph import attribute
from ..isa import BINARY_FUNCTION, REDUCE_FUNCTION
from ..tensor import Tensor
from .elementwise import emit_binary
from .recurrent import text
from .reduce import reduce_axes

PROBE_OPSET = 19  # Resize takes every attribute (antialias, axes, half_pixel_symmetric) from here on
MODES = ("nearest", "linear", "cubic")
MAX_INTERPOLATED_AXES = 2  # bilinear or bicubic at most, as ONNX Runtime's Resize
MAX_PROBE = 1 << 22  # input x output positions of one axis's probe: 32 MB of float64 weights
MAX_TAPS = 64  # inputs summed per output (2-D antialiased shrinking by 1/4 takes 8 x 8)
BY_LENGTH = ("align_corners", "tf_crop_and_resize")  # the transforms that read no scale
PROBED = ("coordinate_transformation_mode", "nearest_mode", "exclude_outside", "mode", "cubic_coeff_a", "antialias")


def lower_resize(ctx, node, inputs):
    x = inputs[0]
    if _scales_only(ctx, node):  # an input, or Upsample-7's attribute
        inputs = [x, None, inputs[1] if len(inputs) > 1 else attribute(node, "scales", None), None]
    mode = text(attribute(node, "mode", "nearest"))
    if mode not in MODES:
        ctx.fail(node, f"attribute 'mode'='{mode}' is not supported ({', '.join(MODES)})")
    policy = text(attribute(node, "keep_aspect_ratio_policy", "stretch"))
    if policy != "stretch":
        ctx.fail(node, f"attribute 'keep_aspect_ratio_policy'='{policy}' is not supported (only 'stretch')")
    resized = {axis: weights for axis, weights in enumerate(_axis_weights(ctx, node, inputs)) if weights is not None}
    extrapolation = ctx.resident(np.array([attribute(node, "extrapolation_value", 0.0)], np.float32)).offset
    if mode == "nearest":
        return [ctx.from_addresses(_nearest(ctx, node, x.addresses(), resized, extrapolation))]
    if len(resized) > MAX_INTERPOLATED_AXES:
        ctx.fail(node, f"resizes {len(resized)} axes by mode '{mode}'; at most {MAX_INTERPOLATED_AXES} are supported")
    taps = math.prod(int((w != 0).sum(axis=0).max()) for w in resized.values())
    if taps > MAX_TAPS:
        ctx.fail(node, f"sums {taps} inputs for each output; at most {MAX_TAPS} are supported")
    addresses, weights = _interpolated(x.addresses(), resized, extrapolation)
    products = emit_binary(ctx, node, BINARY_FUNCTION.MUL, ctx.from_addresses(addresses), weights)
    return [reduce_axes(ctx, node, products, [len(products.shape) - 1], 0, REDUCE_FUNCTION.SUM)]


def _axis_weights(ctx, node, inputs) -> list[np.ndarray | None]:
    """Per axis of X, the (input, output) weights along it, or None where it is left as it is."""
    x, roi, scales, sizes = (list(inputs) + [None] * 4)[:4]
    for index, value in enumerate((roi, scales, sizes), 1):
        if isinstance(value, Tensor):
            ctx.fail(node, f"input '{node.input[index]}' is computed at run time; it must be constant")
    rank = len(x.shape)
    axes = attribute(node, "axes", None)
    axes = list(range(rank)) if axes is None else axes
    if any(not -rank <= a < rank for a in axes):
        ctx.fail(node, f"attribute 'axes'={axes} does not fit X of rank {rank}")
    axes = [a % rank for a in axes]
    scales, sizes = (None if v is None or np.size(v) == 0 else np.asarray(v).ravel() for v in (scales, sizes))
    if (scales is None) == (sizes is None) or len(scales if sizes is None else sizes) != len(axes):
        ctx.fail(node, f"needs scales or sizes (one of them) for each of its {len(axes)} axes")
    if scales is not None and not np.all(np.isfinite(scales) & (scales > 0)):
        ctx.fail(node, f"scales {scales.tolist()} must be finite and above 0")
    if not math.isfinite(attribute(node, "cubic_coeff_a", -0.75)):
        ctx.fail(node, f"attribute 'cubic_coeff_a'={attribute(node, 'cubic_coeff_a', -0.75)} is not finite")
    # The transforms that map by lengths take the output's length, not in * scale as the
    # reference does (ONNX Runtime's reading: the two differ where in * scale is no integer);
    # pytorch_half_pixel does so for an output of length 1 alone.
    transform = text(attribute(node, "coordinate_transformation_mode", "half_pixel"))
    if _scales_only(ctx, node):
        transform = "asymmetric"
    roi = None if roi is None or np.size(roi) == 0 or transform != "tf_crop_and_resize" \
        else np.asarray(roi, np.float64).ravel()  # read by tf_crop_and_resize alone
    if roi is not None and (roi.size != 2 * len(axes) or not np.all(np.isfinite(roi))):
        ctx.fail(node, f"roi {roi.tolist()} does not give a finite start and end for each of {len(axes)} axes")
    weights = [None] * rank
    for k, axis in enumerate(axes):
        length = int(sizes[k]) if sizes is not None else int(float(scales[k]) * x.shape[axis])
        if sizes is not None or transform in BY_LENGTH or (transform == "pytorch_half_pixel" and length == 1):
            along = ("sizes", length)
        else:
            along = ("scales", float(scales[k]))
        if length < 1:
            ctx.fail(node, f"resizes axis {axis} of X {list(x.shape)} to nothing")
        if x.shape[axis] * length > MAX_PROBE:
            ctx.fail(node, f"resizes axis {axis} from {x.shape[axis]} to {length} positions; at most {MAX_PROBE} "
                           f"(input, output) pairs along an axis are supported")
        span = (0.0, 1.0) if roi is None else (roi[k], roi[k + len(axes)])
        w = _probe(ctx, node, x.shape[axis], along, span, _probed(ctx, node, transform, along))
        if w.shape[0] != w.shape[1] or not np.array_equal(w, np.eye(w.shape[0])):
            weights[axis] = w
    return weights


def _scales_only(ctx, node) -> bool:
    """Upsample, or Resize before opset 11: scales alone, and no attribute for the mapping."""
    return node.op_type == "Upsample" or ctx.graph.opset < 11


def _probed(ctx, node, transform: str, along) -> list:
    """The attributes of the probe: the node's own, or for Upsample and Resize before opset 11
    their mapping as ONNX Runtime runs them: asymmetric, the nearest input below when enlarging,
    above when shrinking."""
    if not _scales_only(ctx, node):
        return [a for a in node.attribute if a.name in PROBED]
    return [onnx.helper.make_attribute("mode", text(attribute(node, "mode", "nearest"))),
            onnx.helper.make_attribute("coordinate_transformation_mode", transform),
            onnx.helper.make_attribute("nearest_mode", "floor" if along[1] >= 1 else "ceil")]


def _probe(ctx, node, n: int, along: tuple[str, float | int], span, attributes) -> np.ndarray:
    """The reference Resize of an (n, n) identity along its second axis as the node resizes one
    of its axes of length n (with ``attributes``): entry [i, j] is the weight of input i in
    output j (an output outside the roi has none)."""
    kind, value = along
    names = ["X", "roi", "scales" if kind == "scales" else "", "sizes" if kind == "sizes" else ""]
    probe = onnx.helper.make_node("Resize", names, ["Y"], extrapolation_value=0.0)
    probe.attribute.extend(attributes)
    feeds = {"X": np.eye(n), "roi": np.array([0.0, span[0], 1.0, span[1]], np.float32),
             kind: np.array([1.0, value], np.float32) if kind == "scales" else np.array([n, value], np.int64)}
    try:
        return np.asarray(ReferenceEvaluator(probe, opsets={"": PROBE_OPSET}).run(None, feeds)[0], np.float64)
    except Exception as e:  # noqa: BLE001 - the reference evaluator raises whatever numpy raises
        ctx.fail(node, f"its resizing cannot be evaluated ({first_line(e)})")


def _outside(w: np.ndarray) -> np.ndarray:
    """The outputs that no input reaches (outside tf_crop_and_resize's roi)."""
    return ~w.any(axis=0)


def _nearest(ctx, node, addresses, resized, extrapolation) -> np.ndarray:
    """X's addresses picked along each resized axis, extrapolation's where an axis's output is
    outside the roi."""
    outside = np.zeros((), bool)
    for axis, w in resized.items():
        if not np.all((w == 0) | (w == 1)) or np.any(w.sum(axis=0) > 1):
            ctx.fail(node, f"its nearest weights along axis {axis} are not one input per output")
        addresses = np.take(addresses, w.argmax(axis=0), axis=axis)
        outside = outside | _along(_outside(w), axis, addresses.ndim)
    return np.where(outside, extrapolation, addresses)


def _interpolated(addresses, resized, extrapolation) -> tuple[np.ndarray, np.ndarray]:
    """(addresses, weights), each X's resized shape + (taps,): the inputs each output sums and
    their weights, along each resized axis as many taps as its output with the most inputs has
    (an unused tap: weight 0); an output outside the roi reads extrapolation's cell with weight 1."""
    picked, weights = [addresses], [np.ones(())]
    outside = np.zeros((), bool)
    for axis, w in resized.items():
        used = w != 0
        order = np.argsort(~used, axis=0, kind="stable")[:int(used.sum(axis=0).max())]  # each output's inputs first
        next_picked, next_weights = [], []
        for tap in range(order.shape[0]):
            tap_weight = _along(np.take_along_axis(w, order[tap:tap + 1], axis=0)[0], axis, addresses.ndim)
            for a, v in zip(picked, weights):
                next_picked.append(np.take(a, order[tap], axis=axis))
                next_weights.append(v * tap_weight)
        picked, weights = next_picked, next_weights
        outside = outside | _along(_outside(w), axis, addresses.ndim)
    shape = picked[0].shape
    picked = np.stack([np.broadcast_to(a, shape) for a in picked], axis=-1)
    weights = np.stack([np.broadcast_to(v, shape) for v in weights], axis=-1)
    first = np.arange(picked.shape[-1]) == 0
    picked = np.where(outside[..., None] & first, extrapolation, picked)
    weights = np.where(outside[..., None], first.astype(np.float64), weights)
    # the weights repeat along the axes before the first resized one: kept once (a periodic operand)
    lead = next((a for a in range(len(shape)) if a in resized), len(shape))
    return picked, weights.astype(np.float32)[(0,) * lead][(None,) * lead]


def _along(values: np.ndarray, axis: int, rank: int) -> np.ndarray:
    """1-D ``values`` shaped to broadcast along ``axis`` of a rank-``rank`` array."""
    return values.reshape([-1 if a == axis else 1 for a in range(rank)])


HANDLERS = {"Resize": lower_resize, "Upsample": lower_resize}
