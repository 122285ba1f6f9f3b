"""The glue that speech and sensor models emit around their recurrent core: Gelu (both forms of
`approximate`), Sin, Cos, Round (ties to even), Mod (fmod 0 and 1, integer and float meanings),
CumSum (exclusive, reverse, any axis), ArgMax / ArgMin (keepdims, select_last_index), TopK (both
outputs) and Resize (nearest and linear), attribute by attribute against ONNX Runtime and
onnx.reference (<= 1e-5 relative), each between the model input and an LSTM that streams them
(tests/support/front_end_models.py); `run` over the stream gives the bits of repeated `step`.
Against ONNX Runtime alone where onnx.reference computes another value (noted by the case).
Resize covers nearest (each coordinate_transformation_mode and nearest_mode), linear, cubic,
antialiasing, roi with extrapolation, Upsample and the Resize of opset 10.

None of these ops reads a weight, so int8 and fp16 quantization leave them as they are (their
constant inputs are axes, k, divisors and scales, never quantized): checked on a model of each.

Then the attributes still outside: each refused naming op, node and attribute in one line.
"""

from __future__ import annotations

import edgeseq_runtime
import numpy as np
import onnx
import pytest
from edgeseq_runtime import ModelError
from onnx import TensorProto, helper, numpy_helper
from support.front_end_models import HIDDEN, front_end_model

STEPS = 5
RTOL = 1e-5
rng = np.random.default_rng(23)


def node(op, inputs, outputs=("features",), **attrs):
    return helper.make_node(op, list(inputs), list(outputs), name=f"{op.lower()}_under_test", **attrs)


def ints(name, values):
    return (name, np.asarray(values, np.int64))


def to_int(name, source="x"):
    """x as int32: Cast rounds toward zero, so the integer meaning of the op is what is tested."""
    return helper.make_node("Cast", [source], [name], to=TensorProto.INT32)


ONNX_RUNTIME = {"engines": ("onnxruntime",)}
ONNX_REFERENCE = {"engines": ("onnx",)}  # ONNX Runtime refuses the case (cubic along the last of 3 axes)


def divisors(n):
    """Divisors of both signs, none near 0."""
    return ("d", np.array([1.5, -2.0, 3.0, -0.75, 7.0, -4.0][:n], np.float32))


INTEGER_DIVISORS = ("d", np.array([2, -3, 4, -5, 7, 1], np.int32))
TRANSFORMS = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
              "tf_crop_and_resize")
ROUNDINGS = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")
# roi, read by tf_crop_and_resize only: a crop of the resized axes
ROI_3D = np.array([0, 0, 0.1, 1, 1, 0.8], np.float32)
ROI_4D = np.array([0, 0, 0.2, 0.1, 1, 1, 0.9, 0.7], np.float32)


def length_engines(mode, shape, scales) -> dict:
    """align_corners and tf_crop_and_resize map by the output's length: ONNX Runtime takes the
    length of the output, onnx.reference in * scale, which differ where that is no integer
    (2.5 * 5): ONNX Runtime alone there."""
    integral = all(float(n * s).is_integer() for n, s in zip(shape, scales))
    return {} if integral or mode not in ("align_corners", "tf_crop_and_resize") else ONNX_RUNTIME


CASES = {
    # unary functions
    "sin": (node("Sin", ["x"]), (1, 3, 6), [], {"scale": 4.0}),
    "cos": (node("Cos", ["x"]), (1, 3, 6), [], {"scale": 4.0}),
    "sin of positions": (node("Sin", ["x"]), (1, 3, 6), [], {"scale": 1e4}),  # arguments far past 2 pi
    "round": (node("Round", ["x"]), (1, 3, 6), [], {"scale": 3.0}),
    "round ties to even": (node("Round", ["x"]), (1, 3, 6), [], {"halves": True}),
    "gelu": (node("Gelu", ["x"]), (1, 3, 6), [], {"scale": 4.0, "opset": 20}),
    "gelu approximate none": (node("Gelu", ["x"], approximate="none"), (1, 3, 6), [], {"scale": 4.0, "opset": 20}),
    "gelu approximate tanh": (node("Gelu", ["x"], approximate="tanh"), (1, 3, 6), [], {"scale": 4.0, "opset": 20}),
    # Mod: fmod=1 truncates (the sign of A), fmod=0 floors (the sign of B): integers, and floats from opset 28
    "mod fmod=1 by constants": (node("Mod", ["x", "d"], fmod=1), (1, 3, 6), [divisors(6)], {"scale": 5.0}),
    "mod fmod=1 by a run-time tensor": ([helper.make_node("Sin", ["x"], ["d"]), node("Mod", ["x", "d"], fmod=1)],
                                        (1, 3, 6), [], {"scale": 3.0}),
    "mod fmod=1 of integers": ([to_int("a"), node("Mod", ["a", "d"], fmod=1)], (1, 3, 6), [INTEGER_DIVISORS],
                               {"scale": 20.0}),
    "mod fmod=0 of integers": ([to_int("a"), node("Mod", ["a", "d"])], (1, 3, 6), [INTEGER_DIVISORS],
                               {"scale": 20.0}),
    "mod fmod=0 of integers by integers": ([to_int("a"), helper.make_node("Abs", ["a"], ["b"]),
                                            helper.make_node("Add", ["b", "one"], ["positive"]),
                                            node("Mod", ["a", "positive"])], (1, 3, 6), [("one", np.int32(1))],
                                           {"scale": 20.0}),
    "mod fmod=0 of floats, opset 28": (node("Mod", ["x", "d"]), (1, 3, 6), [divisors(6)],
                                       {"scale": 5.0, "opset": 28, **ONNX_RUNTIME}),
    # ArgMax / ArgMin: the index as int64 (held as its value); ties (multiples of 0.5) take the first or the last
    **{f"{op.lower()} {label}": (node(op, ["x"], **attrs), (1, 3, 6), [], {"halves": True})
       for op in ("ArgMax", "ArgMin")
       for label, attrs in [("defaults", {}), ("axis 2", {"axis": 2}), ("axis 1 keepdims 0", {"axis": 1, "keepdims": 0}),
                            ("axis -1 select_last_index", {"axis": -1, "select_last_index": 1}),
                            ("axis 1 select_last_index keepdims 0", {"axis": 1, "select_last_index": 1, "keepdims": 0})]},
    "argmax of a classifier's scores": ([helper.make_node("Softmax", ["x"], ["p"], axis=-1), node("ArgMax", ["p"], axis=-1)],
                                        (1, 3, 6), [], {}),
    # CumSum: running sums along a constant axis, before or after each value, from the front or the end
    **{f"cumsum {label}": (node("CumSum", ["x", "axis"], **attrs), (1, 3, 6), [axis], {"scale": 2.0})
       for label, axis, attrs in [
           ("axis 2", ints("axis", 2), {}), ("axis 1", ints("axis", 1), {}), ("axis -1 int32", ("axis", np.int32(-1)), {}),
           ("exclusive", ints("axis", 2), {"exclusive": 1}), ("reverse", ints("axis", 1), {"reverse": 1}),
           ("exclusive reverse", ints("axis", 2), {"exclusive": 1, "reverse": 1}),
       ]},
    "cumsum of a mask of integers": ([helper.make_node("Greater", ["x", "zero"], ["above"]),
                                      helper.make_node("Cast", ["above"], ["mask"], to=TensorProto.INT64),
                                      node("CumSum", ["mask", "axis"])], (1, 3, 6),
                                     [("zero", np.float32(0.0)), ints("axis", 2)], {}),
    # TopK with a constant k: both outputs (Values, and Indices cast to float), ties ordered by index
    **{f"topk {label}": ([node("TopK", ["x", "k"], ["values", "indices"], **attrs),
                          helper.make_node("Cast", ["indices"], ["where"], to=TensorProto.FLOAT),
                          helper.make_node("Concat", ["values", "where"], ["features"], axis=attrs.get("axis", -1))],
                         (1, 3, 6), [ints("k", [k])], {"halves": True, **(ONNX_REFERENCE if k == 0 else {})})
       # k 0: ONNX Runtime's LSTM of no inputs reads memory it never wrote (now and then NaN)
       for label, k, attrs in [
           ("k 3", 3, {}), ("k 3 smallest", 3, {"largest": 0}), ("k 2 axis 1", 2, {"axis": 1}),
           ("k 6, all", 6, {"axis": 2}), ("k 1 smallest axis -2", 1, {"axis": -2, "largest": 0}),
           ("k 0, none: the LSTM behind takes no input", 0, {}),
       ]},
    # a reduction of no values: the constant ONNX defines, told apart by Equal from a value read elsewhere
    **{f"{op.lower()} of an empty axis": (
        [helper.make_node("Slice", ["x", "start", "end", "axes"], ["none"]),
         helper.make_node(op, ["none", "reduced"], ["m"]),
         helper.make_node("Equal", ["m", "expected"], ["same"]),
         helper.make_node("Cast", ["same"], ["one"], to=TensorProto.FLOAT), node("Add", ["x", "one"])],
        (1, 3, 6), [ints("start", [2]), ints("end", [2]), ints("axes", [axis]), ints("reduced", [axis]),
                    ("expected", np.float32(value))], {"opset": 18})
       for op, axis, value in [("ReduceMax", 1, -np.inf), ("ReduceMin", 1, np.inf), ("ReduceSum", 1, 0.0),
                               ("ReduceProd", 1, 1.0), ("ReduceL2", 1, 0.0), ("ReduceLogSumExp", 1, -np.inf)]},
    # Resize nearest: each coordinate_transformation_mode with each nearest_mode, up and down
    **{f"resize nearest {mode} {rounding} x{scale}": (
        node("Resize", ["x", "roi", "scales"], coordinate_transformation_mode=mode, nearest_mode=rounding),
        (1, 2, 5), [("roi", ROI_3D), ("scales", np.array([1, 1, scale], np.float32))],
        {"opset": 19, **length_engines(mode, (1, 2, 5), [1, 1, scale])})
       for mode in TRANSFORMS for rounding in ROUNDINGS for scale in (2.5, 0.625)},
    **{f"resize {mode} pytorch_half_pixel to one": (
        node("Resize", ["x", "", "scales"], mode=mode, coordinate_transformation_mode="pytorch_half_pixel"),
        (1, 2, 5), [("scales", np.array([1, 1, 0.25], np.float32))], {"opset": 19, **ONNX_RUNTIME})
       for mode in ("nearest", "linear")},
    # Upsample and Resize before opset 11: asymmetric, nearest by floor enlarging and by ceil shrinking
    **{f"{op.lower()} {mode} opset {opset} x{scale}": (
        node(op, ["x", "scales"], mode=mode), (1, 2, 5), [("scales", np.array([1, 1, scale], np.float32))],
        {"opset": opset, **ONNX_RUNTIME})
       for op, opset, scales in [("Upsample", 9, (2.5, 1.75)), ("Resize", 10, (2.5, 0.625, 0.4))]
       for mode in ("nearest", "linear") for scale in scales},
    "upsample nearest opset 7, scales attribute": (node("Upsample", ["x"], scales=[1.0, 2.0, 1.5]), (1, 2, 5), [],
                                                  {"opset": 7, **ONNX_RUNTIME}),
    "resize nearest, a roi that only tf_crop_and_resize reads": (
        node("Resize", ["x", "roi", "scales"]), (1, 2, 5),
        [("roi", np.array([0, 0, np.nan, 1, 1, 7], np.float32)), ("scales", np.array([1, 1, 2], np.float32))],
        {"opset": 19, **ONNX_RUNTIME}),
    "resize nearest 2-D sizes": (node("Resize", ["x", "", "", "sizes"]), (1, 2, 3, 4),
                                 [ints("sizes", [1, 2, 7, 5])], {"opset": 19}),
    "resize nearest axes": (node("Resize", ["x", "", "scales"], axes=[-1, 2], nearest_mode="floor"), (1, 2, 3, 4),
                            [("scales", np.array([2.0, 0.5], np.float32))], {"opset": 19, **ONNX_RUNTIME}),
    "resize nearest extrapolation": (node("Resize", ["x", "roi", "scales"], coordinate_transformation_mode="tf_crop_and_resize",
                                          extrapolation_value=-7.0), (1, 2, 5),
                                     [("roi", np.array([0, 0, -0.5, 1, 1, 1.5], np.float32)),
                                      ("scales", np.array([1, 1, 2], np.float32))], {"opset": 19}),
    # Resize linear along one axis and two: each coordinate_transformation_mode
    **{f"resize linear {mode} {label}": (
        node("Resize", ["x", "roi", "scales"], mode="linear", coordinate_transformation_mode=mode), shape,
        [("roi", roi), ("scales", np.array(scales, np.float32))], {"opset": 19, **length_engines(mode, shape, scales)})
       for mode in TRANSFORMS
       for label, shape, roi, scales in [("1-D", (1, 2, 5), ROI_3D, [1, 1, 2.5]),
                                         ("2-D", (1, 2, 3, 4), ROI_4D, [1, 1, 2.0, 1.5]),
                                         ("2-D down", (1, 2, 6, 5), ROI_4D, [1, 1, 0.5, 0.75])]},
    # Resize cubic, and antialiased shrinking
    **{f"resize cubic {label}": (node("Resize", ["x", "", "scales"], mode="cubic",
                                      **{k: v for k, v in attrs.items() if k != "engines"}), shape,
                                 [("scales", np.array(scales, np.float32))],
                                 {"opset": 19, **{k: v for k, v in attrs.items() if k == "engines"}})
       for label, shape, scales, attrs in [
           ("1-D", (1, 2, 5), [1, 1, 2.5], ONNX_REFERENCE), ("2-D", (1, 2, 4, 5), [1, 1, 2.0, 1.5], {}),
           ("2-D down", (1, 2, 6, 8), [1, 1, 0.5, 0.75], {}),
           ("cubic_coeff_a -0.5 exclude_outside", (1, 2, 4, 5), [1, 1, 1.5, 2.0],
            {"cubic_coeff_a": -0.5, "exclude_outside": 1}),
           ("align_corners", (1, 2, 4, 5), [1, 1, 2.0, 2.0], {"coordinate_transformation_mode": "align_corners"}),
           ("asymmetric", (1, 2, 5), [1, 1, 1.5], {"coordinate_transformation_mode": "asymmetric", **ONNX_REFERENCE}),
       ]},
    **{f"resize {mode} antialias x{scale}": (node("Resize", ["x", "", "scales"], mode=mode, antialias=1), (1, 2, 8, 8),
                                            [("scales", np.array([1, 1, scale, scale], np.float32))], {"opset": 19})
       for mode in ("linear", "cubic") for scale in (0.5, 0.75)},
    "resize linear 2-D sizes": (node("Resize", ["x", "", "", "sizes"], mode="linear"), (1, 2, 3, 4),
                                [ints("sizes", [1, 2, 5, 9])], {"opset": 19}),
    "resize linear extrapolation": (node("Resize", ["x", "roi", "scales"], mode="linear", extrapolation_value=2.5,
                                         coordinate_transformation_mode="tf_crop_and_resize"), (1, 2, 3, 4),
                                    [("roi", np.array([0, 0, -0.4, 0.2, 1, 1, 0.9, 1.3], np.float32)),
                                     ("scales", np.array([1, 1, 2, 2], np.float32))], {"opset": 19}),
}


@pytest.mark.parametrize("name", CASES)
def test_op_streams_as_the_references_compute_it(tmp_path, name):
    nodes, x_shape, initializers, options = CASES[name]
    model = front_end_model(tmp_path, nodes if isinstance(nodes, list) else [nodes], x_shape, initializers,
                            **{k: v for k, v in options.items() if k == "opset"})
    m = edgeseq_runtime.load(str(model.path))
    xs = step_inputs(options, int(np.prod(x_shape)))
    ys = np.stack([m.step(x) for x in xs])
    m.reset()
    assert np.array_equal(m.run(xs), ys), "run differs from repeated step"
    for engine in options.get("engines", ("onnxruntime", "onnx")):
        reference = model.reference(engine, xs)
        atol = RTOL * max(1.0, np.abs(reference).max())
        np.testing.assert_allclose(ys, reference, rtol=RTOL, atol=atol, err_msg=f"{name} vs {engine}")


def test_topk_unsorted_gives_the_values_onnx_runtime_gives_in_order(tmp_path):
    """sorted=0 leaves the order to the runtime (ONNX Runtime's is a heap's): the same values and
    indices as ONNX Runtime's, in the order sorted=1 gives them."""
    def model(sort, folder):
        nodes = [node("TopK", ["x", "k"], ["values", "indices"], sorted=sort),
                 helper.make_node("Cast", ["indices"], ["where"], to=TensorProto.FLOAT),
                 helper.make_node("Concat", ["values", "where"], ["features"], axis=-1)]
        (tmp_path / folder).mkdir()
        return front_end_model(tmp_path / folder, nodes, (1, 3, 8), [ints("k", [4])])
    unsorted, ordered = model(0, "unsorted"), model(1, "sorted")
    xs = step_inputs({}, 24)
    got = edgeseq_runtime.load(str(unsorted.path)).run(xs)
    np.testing.assert_allclose(got, ordered.reference("onnxruntime", xs), rtol=RTOL, atol=RTOL)
    theirs = unsorted.reference("onnxruntime", xs)[:, :24].reshape(STEPS, 3, 8)
    def pairs(row):  # (value, index) of a row [4 values, their 4 indices], in any order
        return sorted(zip(row[:4].tolist(), row[4:].tolist()))

    for ours, heap in zip(got[:, :24].reshape(STEPS, 3, 8), theirs):
        assert all(pairs(a) == pairs(b) for a, b in zip(ours, heap))


QUANTIZED = ["mod fmod=1 by constants", "cumsum exclusive", "topk k 3", "resize linear half_pixel 2-D",
             "resize nearest half_pixel floor x2.5", "gelu", "argmax axis 2"]


@pytest.mark.parametrize("mode", ["int8", "fp16"])
@pytest.mark.parametrize("name", QUANTIZED)
def test_quantize_leaves_the_ops_constants_as_they_are(tmp_path, name, mode):
    """These ops read no weight: their constant inputs (divisors, axes, k, scales) stay float32
    and int, so the front end's outputs are the float32 model's, bit for bit (the LSTM's
    weights, quantized, move the rest of the output)."""
    quantize = pytest.importorskip("edgeseq_export.backends.quantize").quantize
    nodes, x_shape, initializers, options = CASES[name]
    model = front_end_model(tmp_path, nodes if isinstance(nodes, list) else [nodes], x_shape, initializers,
                            **{k: v for k, v in options.items() if k == "opset"})
    quantize(model.path, tmp_path / "quantized.onnx", mode)
    xs = step_inputs(options, int(np.prod(x_shape)))
    expected = edgeseq_runtime.load(str(model.path)).run(xs)
    got = edgeseq_runtime.load(str(tmp_path / "quantized.onnx")).run(xs)
    front = expected.shape[1] - HIDDEN
    assert np.array_equal(got[:, :front], expected[:, :front])
    assert not np.array_equal(got[:, front:], expected[:, front:])  # the LSTM's weights were quantized


def step_inputs(options, size) -> np.ndarray:
    """STEPS rows: uniform in [-scale, scale), or multiples of 0.5 in [-4, 4] (ties for rounding)."""
    if options.get("halves"):
        return (rng.integers(-8, 9, (STEPS, size)) / 2).astype(np.float32)
    return rng.uniform(-1, 1, (STEPS, size)).astype(np.float32) * options.get("scale", 1.0)


@pytest.mark.parametrize("nodes, initializers, opset, reason", [
    (node("Gelu", ["x"], approximate="erf"), [], 20, r"attribute 'approximate'='erf' is not supported \(none, tanh\)"),
    (node("Mod", ["x", "d"], fmod=2), [divisors(6)], 18, r"attribute 'fmod'=2 is not 0 or 1"),
    (node("Mod", ["x", "d"]), [divisors(6)], 18,
     r"attribute 'fmod'=0 on float tensors is defined from opset 28 on \(the graph has opset 18\); set fmod=1"),
    (node("ArgMax", ["x"], select_last_index=2), [], 18, r"attribute 'select_last_index'=2 is not 0 or 1"),
    (node("ArgMin", ["x"], axis=3), [], 18, r"axis 3 is out of range for data of shape \[1, 3, 6\]"),
    ([helper.make_node("Slice", ["x", "start", "end", "axes"], ["none"]), node("ArgMax", ["none"], axis=1)],
     [ints("start", [2]), ints("end", [2]), ints("axes", [1])], 18,
     r"axis 1 of data of shape \[1, 0, 6\] is empty: it has no maximum or minimum"),
    ([helper.make_node("Slice", ["x", "start", "end", "axes"], ["none"]), node("ReduceMean", ["none", "axes"])],
     [ints("start", [2]), ints("end", [2]), ints("axes", [1])], 18,
     r"reduces empty axes \[1\] of data of shape \[1, 0, 6\], which gives no defined value"),
    (node("CumSum", ["x", "axis"], exclusive=2), [ints("axis", 2)], 18, r"attribute 'exclusive'=2 is not 0 or 1"),
    ([helper.make_node("ReduceMax", ["x"], ["m"], keepdims=0, axes=[0, 1, 2]),
      helper.make_node("Cast", ["m"], ["axis"], to=TensorProto.INT64), node("CumSum", ["x", "axis"])], [], 12,
     r"input 'axis' \(axis\) is computed at run time; it must be constant"),
    (node("TopK", ["x", "k"], ["features", "i"]), [ints("k", [7])], 18, r"k=7 is not within the 6 values of axis 2"),
    ([helper.make_node("ReduceMax", ["x"], ["m"], keepdims=0, axes=[0, 1, 2]),
      helper.make_node("Cast", ["m"], ["k"], to=TensorProto.INT64), node("TopK", ["x", "k"], ["features", "i"])], [], 12,
     r"input 'k' \(K\) is computed at run time; it must be constant"),
    (node("Resize", ["x", "", "scales"], mode="area"), [("scales", np.array([1, 1, 2], np.float32))], 19,
     r"attribute 'mode'='area' is not supported \(nearest, linear, cubic\)"),
    ([helper.make_node("Tile", ["x", "repeats"], ["long"]),
      node("Resize", ["long", "", "scales"], mode="linear", antialias=1)],
     [ints("repeats", [1, 1, 20]), ("scales", np.array([1, 1, 1 / 120], np.float32))],
     19, r"sums 120 inputs for each output; at most 64 are supported"),
    (node("Resize", ["x", "", "", "sizes"], keep_aspect_ratio_policy="not_larger"), [ints("sizes", [1, 6, 12])], 19,
     r"attribute 'keep_aspect_ratio_policy'='not_larger' is not supported \(only 'stretch'\)"),
    (node("Resize", ["x", "roi", "scales"], coordinate_transformation_mode="tf_half_pixel_for_nn"),
     [("roi", np.zeros(0, np.float32)), ("scales", np.array([1, 1, 2], np.float32))], 11,
     r"its resizing cannot be evaluated \(Invalid coordinate_transformation_mode: 'tf_half_pixel_for_nn'"),
    (node("Resize", ["x", "", "scales"]), [("scales", np.array([1, 1, 1e6], np.float32))], 19,
     r"resizes axis 2 from 6 to 6000000 positions; at most 4194304 \(input, output\) pairs along an axis are supported"),
    (node("Resize", ["x", "", "scales"]), [("scales", np.array([1, 1, 0.1], np.float32))], 19,
     r"resizes axis 2 of X \[1, 3, 6\] to nothing"),
    (node("Resize", ["x", "", "scales"]), [("scales", np.array([1, 1, np.nan], np.float32))], 19,
     r"scales \[1.0, 1.0, nan\] must be finite and above 0"),
    (node("Resize", ["x", "roi", "scales"], coordinate_transformation_mode="tf_crop_and_resize"),
     [("roi", np.array([0, 0, np.nan, 1, 1, 1], np.float32)), ("scales", np.array([1, 1, 2], np.float32))], 19,
     r"roi \[0.0, 0.0, nan, 1.0, 1.0, 1.0\] does not give a finite start and end for each of 3 axes"),
    (node("Resize", ["x", "", "scales"], mode="cubic", cubic_coeff_a=float("inf")),
     [("scales", np.array([1, 1, 2], np.float32))], 19, r"attribute 'cubic_coeff_a'=inf is not finite"),
    (node("Resize", ["x", "", "scales"], mode="linear"), [("scales", np.array([2, 2, 2], np.float32))], 19,
     r"resizes 3 axes by mode 'linear'; at most 2 are supported"),
    ([helper.make_node("ReduceMax", ["x"], ["m"], keepdims=0, axes=[1, 2]),
      helper.make_node("Concat", ["one", "one", "m"], ["scales"], axis=0),
      node("Resize", ["x", "", "scales"])], [("one", np.ones(1, np.float32))], 13,
     r"input 'scales' is computed at run time; it must be constant"),
], ids=["gelu approximate erf", "mod fmod=2", "mod fmod=0 of floats before opset 28", "argmax select_last_index=2",
        "argmin axis 3", "argmax of an empty axis", "reducemean of an empty axis", "cumsum exclusive=2", "cumsum axis at run time", "topk k past the axis", "topk k at run time",
        "resize mode area", "resize antialias shrinking 120-fold", "resize keep_aspect_ratio_policy",
        "resize tf_half_pixel_for_nn", "resize a millionfold", "resize to nothing", "resize by a NaN scale", "resize NaN roi", "resize infinite cubic_coeff_a", "resize linear on 3 axes", "resize scales at run time"])
def test_what_stays_outside_is_refused_by_name(tmp_path, nodes, initializers, opset, reason):
    op = nodes[-1].op_type if isinstance(nodes, list) else nodes.op_type
    with pytest.raises(ModelError, match=rf"^[^\n]*'{op.lower()}_under_test' \({op}\): {reason}[^\n]*$"):
        edgeseq_runtime.load(str(_one_node_model(tmp_path, nodes, initializers, opset)))


def _one_node_model(tmp_path, front, initializers, opset):
    """x [1, 3, 6] -> front -> features [d, d, d], the graph output (no LSTM: the load stops before one)."""
    nodes = front if isinstance(front, list) else [front]
    graph = helper.make_graph(nodes, "outside", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 6])],
                              [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["d"] * 3)],
                              [numpy_helper.from_array(np.asarray(v), k) for k, v in initializers])
    path = tmp_path / "outside.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), path)
    return path
