"""The ops of convolutional front ends (Conv, ConvTranspose, Pad, norms, reductions, pointwise math,
comparisons, Where, batched MatMul, ...), attribute by attribute, each between the model input and an
LSTM so that the runtime streams them, against ONNX Runtime (optimisations off) and
onnx.reference's evaluator where ONNX Runtime lacks the op or attribute. Max error <= 1e-5 relative.

Models are built by tests/support/front_end_models.py; every case streams 6 steps, the LSTM's
state carried inside the runtime and fed back to the references.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from support.front_end_models import front_end_model

import edgeseq_runtime
from edgeseq_runtime import ModelError, isa
from edgeseq_runtime.model import StreamingModel

STEPS = 6
RTOL = 1e-5
rng = np.random.default_rng(7)


def weights(*shape, scale=0.5):
    return rng.uniform(-scale, scale, shape).astype(np.float32)


def node(op, inputs, outputs=("features",), **attrs):
    return helper.make_node(op, list(inputs), list(outputs), name=f"{op.lower()}_{outputs[0]}", **attrs)


def ints(name, values):
    return (name, np.asarray(values, np.int64))


class Case:
    """One front end: nodes from x to features, x's shape, initializers, and the references that
    implement it ("onnxruntime", "onnx")."""

    def __init__(self, name, nodes, x_shape, initializers=(), engines=("onnxruntime", "onnx"), positive=False,
                 opset=None, atol=None):
        self.name, self.nodes, self.x_shape = name, nodes if isinstance(nodes, list) else [nodes], x_shape
        self.initializers, self.engines, self.positive, self.opset = list(initializers), engines, positive, opset
        self.atol = atol  # None: RTOL times the largest reference value


def conv(name, x_shape, w_shape, bias=True, **attrs):
    inits = [("W", weights(*w_shape))] + ([("B", weights(w_shape[0]))] if bias else [])
    return Case(name, node("Conv", ["x", "W", "B"] if bias else ["x", "W"], **attrs), x_shape, inits)


def conv_transpose(name, x_shape, w_shape, engines=("onnxruntime", "onnx"), **attrs):
    return Case(name, node("ConvTranspose", ["x", "W", "B"], **attrs), x_shape,
                [("W", weights(*w_shape)), ("B", weights(w_shape[1] * attrs.get("group", 1)))], engines)


def unary(op, x_shape=(1, 3, 5), positive=False, engines=("onnxruntime", "onnx"), **attrs):
    return Case(f"{op} {attrs}".strip(" {}"), node(op, ["x"], **attrs), x_shape, positive=positive, engines=engines)


def compared(op, x_shape=(1, 3, 5)):
    """A comparison of x with a constant threshold, cast to float."""
    return Case(op, [node(op, ["x", "t"], ["mask"]), node("Cast", ["mask"], to=TensorProto.FLOAT)], x_shape,
                [("t", np.array([0.1, -0.2, 0.0, 0.3, 0.05], np.float32))])


def reduce(op, x_shape=(1, 3, 4, 5), axes=None, engines=("onnxruntime", "onnx"), **attrs):
    inputs, inits = ["x"], []
    if axes is not None:
        inputs, inits = ["x", "axes"], [ints("axes", axes)]
    return Case(f"{op} axes={axes} {attrs}", node(op, inputs, **attrs), x_shape, inits, engines,
                positive=op in ("ReduceLogSum",))


CASES = [
    # Conv, 1-D: every attribute
    conv("conv1d defaults", (1, 3, 12), (4, 3, 3)),
    conv("conv1d no bias", (1, 3, 12), (4, 3, 3), bias=False),
    conv("conv1d pads", (1, 3, 12), (4, 3, 3), pads=[2, 1]),
    conv("conv1d strides", (1, 3, 12), (4, 3, 3), strides=[2], pads=[1, 1]),
    conv("conv1d dilations", (1, 3, 12), (4, 3, 3), dilations=[3], pads=[2, 0]),
    conv("conv1d group 3", (1, 6, 12), (9, 2, 3), group=3, pads=[1, 1]),
    conv("conv1d depthwise", (1, 8, 12), (8, 1, 5), group=8, pads=[2, 2]),
    conv("conv1d kernel_shape", (1, 3, 12), (4, 3, 3), kernel_shape=[3]),
    conv("conv1d SAME_UPPER", (1, 3, 11), (4, 3, 4), auto_pad="SAME_UPPER", strides=[2]),
    conv("conv1d SAME_LOWER", (1, 3, 11), (4, 3, 4), auto_pad="SAME_LOWER", strides=[2]),
    conv("conv1d VALID", (1, 3, 11), (4, 3, 4), auto_pad="VALID", strides=[3]),
    conv("conv1d 16 outputs (tiles)", (1, 5, 12), (16, 5, 3), pads=[1, 1]),
    conv("conv1d STFT-like", (1, 1, 160), (66, 1, 64), strides=[32]),
    conv("conv1d taps that see only padding", (1, 5, 1), (16, 5, 3), pads=[1, 1]),
    conv("conv1d taps that see only padding, strided", (1, 5, 2), (16, 5, 3), pads=[1, 1], strides=[2]),
    conv("conv1d taps that see only padding, dilated", (1, 5, 3), (16, 5, 3), pads=[4, 4], dilations=[3]),
    Case("conv1d STFT magnitude of the frames after the first (Silero's front end)",
         [node("Pad", ["x", "pads"], ["padded"], mode="reflect"),
          node("Conv", ["padded", "basis"], ["spectrum"], strides=[32]),
          node("Slice", ["spectrum", "s0", "e0", "axes"], ["real"]),
          node("Slice", ["spectrum", "s1", "e1", "axes"], ["imaginary"]),
          node("Pow", ["real", "two"], ["real2"]), node("Pow", ["imaginary", "two"], ["imaginary2"]),
          node("Add", ["real2", "imaginary2"], ["power"]), node("Sqrt", ["power"])], (1, 1, 128),
         [ints("pads", [0, 0, 32, 0, 0, 32]), ("basis", weights(34, 1, 64)), ints("axes", [1, 2]),
          ints("s0", [0, 1]), ints("e0", [17, 4]), ints("s1", [17, 1]), ints("e1", [34, -1]),
          ("two", np.array(2.0, np.float32))]),
    # Conv, 2-D
    conv("conv2d defaults", (1, 2, 6, 7), (3, 2, 3, 3)),
    conv("conv2d pads strides", (1, 2, 7, 8), (5, 2, 3, 2), pads=[1, 0, 2, 1], strides=[2, 3]),
    conv("conv2d dilations group", (1, 4, 7, 8), (6, 2, 2, 3), dilations=[2, 1], group=2, pads=[1, 1, 1, 1]),
    conv("conv2d SAME_UPPER", (1, 2, 5, 6), (3, 2, 3, 2), auto_pad="SAME_UPPER", strides=[2, 2]),
    conv("conv2d batch 2", (2, 2, 5, 6), (3, 2, 3, 3), pads=[1, 1, 1, 1]),
    conv("conv2d taps that see only padding", (1, 2, 1, 2), (3, 2, 3, 5), pads=[1, 2, 1, 2]),
    # patches multiplied where they lie in X (one channel per group, one row of taps, no padding)
    conv("conv1d depthwise, patches in place", (1, 4, 12), (8, 1, 5), group=4, strides=[3]),
    conv("conv2d depthwise 1 x k, patches in place", (1, 3, 4, 9), (6, 1, 1, 4), group=3, strides=[2, 2]),
    # ConvTranspose
    conv_transpose("convtranspose1d defaults", (1, 3, 5), (3, 2, 3)),
    conv_transpose("convtranspose1d strides pads", (1, 3, 5), (3, 2, 4), strides=[2], pads=[1, 2]),
    conv_transpose("convtranspose1d output_padding", (1, 3, 5), (3, 2, 3), strides=[3], output_padding=[1]),
    conv_transpose("convtranspose1d dilations", (1, 3, 5), (3, 2, 3), dilations=[2]),
    # onnx.reference's ConvTranspose reshapes W wrongly for group > 1 (onnx 1.23)
    conv_transpose("convtranspose1d group", (1, 4, 5), (4, 3, 3), group=2, strides=[2], engines=("onnxruntime",)),
    # onnx.reference's ConvTranspose cannot take output_shape or auto_pad (onnx 1.23)
    conv_transpose("convtranspose1d output_shape", (1, 3, 5), (3, 2, 3), strides=[2], output_shape=[10],
                   engines=("onnxruntime",)),
    conv_transpose("convtranspose1d SAME_UPPER", (1, 3, 5), (3, 2, 4), strides=[2], auto_pad="SAME_UPPER",
                   engines=("onnxruntime",)),
    conv_transpose("convtranspose1d SAME_LOWER", (1, 3, 5), (3, 2, 4), strides=[2], auto_pad="SAME_LOWER",
                   engines=("onnxruntime",)),
    conv_transpose("convtranspose2d", (1, 2, 3, 4), (2, 3, 3, 2), strides=[2, 1], pads=[1, 0, 0, 1]),
    # BatchNormalization: folded into the Conv before it, and on its own
    Case("conv + batchnorm (folded)", [node("Conv", ["x", "W", "B"], ["conv"], pads=[1, 1]),
                                       node("BatchNormalization", ["conv", "s", "b", "m", "v"], epsilon=1e-3)],
         (1, 3, 8), [("W", weights(4, 3, 3)), ("B", weights(4)), ("s", weights(4)), ("b", weights(4)),
                     ("m", weights(4)), ("v", weights(4, scale=1.0) ** 2 + 0.1)]),
    Case("conv + relu (one instruction)", [node("Conv", ["x", "W", "B"], ["conv"], pads=[1, 1]), node("Relu", ["conv"])],
         (1, 3, 8), [("W", weights(12, 3, 3)), ("B", weights(12))]),
    Case("conv + batchnorm + leakyrelu (one instruction)",
         [node("Conv", ["x", "W"], ["conv"], strides=[2]), node("BatchNormalization", ["conv", "s", "b", "m", "v"], ["bn"]),
          node("LeakyRelu", ["bn"], alpha=0.2)],
         (1, 3, 9), [("W", weights(12, 3, 3)), ("s", weights(12)), ("b", weights(12)), ("m", weights(12)),
                     ("v", weights(12) ** 2 + 0.1)]),
    Case("conv read twice, its relu not fused", [node("Conv", ["x", "W"], ["conv"]), node("Sigmoid", ["conv"], ["s"]),
                                                 node("Mul", ["conv", "s"])], (1, 3, 8), [("W", weights(5, 3, 3))]),
    Case("batchnorm alone", node("BatchNormalization", ["x", "s", "b", "m", "v"]), (1, 3, 2, 4),
         [("s", weights(3)), ("b", weights(3)), ("m", weights(3)), ("v", weights(3) ** 2 + 0.1)]),
    Case("instancenorm", node("InstanceNormalization", ["x", "s", "b"], epsilon=1e-4), (1, 3, 2, 4),
         [("s", weights(3)), ("b", weights(3))]),
    Case("layernorm axis -1", node("LayerNormalization", ["x", "s", "b"]), (1, 3, 6),
         [("s", weights(6)), ("b", weights(6))]),
    Case("layernorm axis 1", node("LayerNormalization", ["x", "s"], axis=1, epsilon=1e-3), (1, 3, 6),
         [("s", weights(3, 6))]),
    # Pad
    Case("pad constant", node("Pad", ["x", "pads", "value"], mode="constant"), (1, 2, 5),
         [ints("pads", [0, 1, 2, 0, 0, 3]), ("value", np.array(0.25, np.float32))]),
    Case("pad constant zero", node("Pad", ["x", "pads"]), (1, 2, 5), [ints("pads", [0, 0, 2, 0, 0, 1])]),
    Case("pad reflect", node("Pad", ["x", "pads"], mode="reflect"), (1, 2, 9), [ints("pads", [0, 0, 3, 0, 0, 4])]),
    Case("pad edge", node("Pad", ["x", "pads"], mode="edge"), (1, 2, 5, 4), [ints("pads", [0, 0, 1, 2, 0, 0, 2, 1])]),
    Case("pad opset 10 attributes", node("Pad", ["x"], mode="constant", pads=[0, 0, 2, 0, 0, 1], value=-0.5),
         (1, 2, 5), opset=10),
    Case("pad opset 10 reflect", node("Pad", ["x"], mode="reflect", pads=[0, 0, 2, 0, 0, 3]), (1, 2, 5), opset=10),
    Case("pad wrap axes", node("Pad", ["x", "pads", "", "axes"], mode="wrap"), (1, 2, 5),
         [ints("pads", [2, 1]), ints("axes", [-1])]),
    # pointwise math
    Case("pow 2", node("Pow", ["x", "e"]), (1, 3, 5), [("e", np.array(2.0, np.float32))]),
    Case("pow 0.5", node("Pow", ["x", "e"]), (1, 3, 5), [("e", np.array(0.5, np.float32))], positive=True),
    Case("pow 3.5", node("Pow", ["x", "e"]), (1, 3, 5), [("e", np.array(3.5, np.float32))], positive=True),
    Case("pow run-time exponent", node("Pow", ["e", "x"]), (1, 3, 5), [("e", np.array([1.5], np.float32))]),
    unary("Sqrt", positive=True), unary("Exp"), unary("Log", positive=True), unary("Abs"), unary("Neg"),
    unary("Reciprocal", positive=True), unary("Relu", (2, 3, 2, 2)), unary("Sigmoid", (2, 3, 2)),
    unary("Tanh", (1, 2, 3, 4)), unary("Elu", alpha=0.7), unary("Selu"), unary("Selu", alpha=1.2, gamma=0.9),
    unary("Softplus"), unary("Floor"), unary("Ceil"), unary("Erf"),
    Case("clip inputs", node("Clip", ["x", "lo", "hi"]), (1, 3, 5),
         [("lo", np.array(-0.3, np.float32)), ("hi", np.array(0.4, np.float32))]),
    Case("clip max only", node("Clip", ["x", "", "hi"]), (1, 3, 5), [("hi", np.array(0.2, np.float32))]),
    Case("clip opset 6 attributes", node("Clip", ["x"], min=-0.2, max=0.1), (1, 3, 5), opset=10,
         engines=("onnxruntime",)),
    Case("prelu per channel", node("PRelu", ["x", "slope"]), (1, 3, 5), [("slope", weights(3, 1))]),
    Case("prelu full", node("PRelu", ["x", "slope"]), (1, 3, 5), [("slope", weights(3, 5))]),
    Case("min of three", node("Min", ["x", "a", "b"]), (1, 3, 5), [("a", weights(5)), ("b", weights(3, 1))]),
    Case("max", node("Max", ["x", "a"]), (1, 3, 5), [("a", weights(1, 5))]),
    compared("Equal"), compared("Less"), compared("LessOrEqual"), compared("Greater"), compared("GreaterOrEqual"),
    Case("equal of rounded", [node("Floor", ["x"], ["f"]), node("Equal", ["f", "z"], ["mask"]),
                              node("Cast", ["mask"], to=TensorProto.FLOAT)], (1, 3, 5),
         [("z", np.array(0.0, np.float32))]),
    Case("where", [node("Greater", ["x", "t"], ["mask"]), node("Where", ["mask", "x", "other"])], (1, 3, 5),
         [("t", np.array(0.0, np.float32)), ("other", weights(3, 1))]),
    Case("not and or", [node("Greater", ["x", "t"], ["p"]), node("Less", ["x", "u"], ["q"]), node("Not", ["p"], ["np"]),
                        node("And", ["np", "q"], ["a"]), node("Or", ["a", "p"], ["o"]), node("Xor", ["o", "q"], ["r"]),
                        node("Cast", ["r"], to=TensorProto.FLOAT)], (1, 3, 5),
         [("t", np.array(0.2, np.float32)), ("u", np.array(-0.1, np.float32))]),
    Case("add of two run-time tensors, broadcast both ways",
         [node("Slice", ["x", "s0", "e0", "ax"], ["a"]), node("Slice", ["x", "s1", "e1", "ax"], ["b"]),
          node("Reshape", ["b", "shape"], ["bt"]), node("Add", ["a", "bt"], ["sum"]),
          node("Mul", ["sum", "a"])], (1, 3, 5),
         [ints("s0", [0]), ints("e0", [1]), ints("s1", [1]), ints("e1", [3]), ints("ax", [1]), ints("shape", [2, 1, 5])]),
    Case("sum and mean", [node("Sum", ["x", "a", "x"], ["s"]), node("Mean", ["s", "x"])], (1, 3, 5),
         [("a", weights(5))]),
    *[Case(f"cast to {name} and back", [node("Mul", ["x", "scale"], ["wide"]), node("Cast", ["wide"], to=to)],
           (1, 3, 6), [("scale", np.array([3e-8, 1e-6, 1e-3, 1.0, 1e3, 6.5e4], np.float32))], atol=1e-30)
      for name, to in (("float16", TensorProto.FLOAT16), ("bfloat16", TensorProto.BFLOAT16),
                       ("double", TensorProto.DOUBLE))],
    # reductions
    *[reduce(op, axes=[2], keepdims=k) for op in ("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd",
                                                  "ReduceL1", "ReduceL2", "ReduceSumSquare", "ReduceLogSumExp")
      for k in (0, 1)],
    reduce("ReduceLogSum", axes=[1, 2]),
    Case("ReduceMean opset 13 axes attribute", node("ReduceMean", ["x"], axes=[1, -1], keepdims=0), (1, 3, 4, 5),
         opset=13),
    reduce("ReduceMean", axes=[1, 3]), reduce("ReduceMean", axes=[-1, -3], keepdims=0), reduce("ReduceMean"),
    reduce("ReduceMax", axes=[0, 2, 3], keepdims=0), reduce("ReduceSum", axes=[], noop_with_empty_axes=1),
    # movement with constant indices, Split, Gemm and MatMul on run-time inputs
    Case("gather axis 2", node("Gather", ["x", "i"], axis=2), (1, 3, 5), [ints("i", [[4, 0], [1, -1]])]),
    Case("scatternd", node("ScatterND", ["x", "i", "u"]), (1, 3, 5), [ints("i", [[0, 2], [0, 0]]), ("u", weights(2, 5))]),
    Case("split", [node("Split", ["x", "sizes"], ["p", "q"], axis=2), node("Mul", ["p", "q"])], (1, 3, 6),
         [ints("sizes", [3, 3])]),
    Case("gemm on a run-time input", [node("Reshape", ["x", "shape"], ["m"]),
                                      node("Gemm", ["m", "W", "C"], transB=1, alpha=0.5, beta=2.0)], (1, 3, 5),
         [ints("shape", [3, 5]), ("W", weights(7, 5)), ("C", weights(7))]),
    Case("batched matmul, broadcast", [node("Reshape", ["x", "s1"], ["a"]), node("Transpose", ["x"], ["t"], perm=[0, 2, 1]),
                                       node("MatMul", ["a", "t"])], (1, 3, 4), [ints("s1", [3, 1, 4])]),
    Case("matmul of vectors", [node("Reshape", ["x", "s1"], ["a"]), node("MatMul", ["a", "a"], ["d"]),
                               node("Reshape", ["d", "s2"])], (1, 3, 4), [ints("s1", [12]), ints("s2", [1])]),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_op_streams_as_the_references_compute_it(tmp_path, case):
    kwargs = {"opset": case.opset} if case.opset else {}
    model = front_end_model(tmp_path, case.nodes, case.x_shape, case.initializers, **kwargs)
    assert_streams_as_the_references(edgeseq_runtime.load(str(model.path)), model, case)


@pytest.mark.parametrize("case", [c for c in CASES if c.name.startswith("conv")], ids=lambda c: c.name)
def test_a_lean_plan_streams_convs_as_the_references_compute_them(tmp_path, case):
    """The plan codegen makes for microcontrollers (lower_model(lean=True): one output position
    of a Conv at a time, its patch read in place where it can be) in the Python runtime: the same
    numbers, in an arena no larger."""
    model = front_end_model(tmp_path, case.nodes, case.x_shape, case.initializers)
    lean = edgeseq_runtime.lower_model(str(model.path), lean=True)
    assert lean.plan.arena.size <= edgeseq_runtime.lower_model(str(model.path)).plan.arena.size
    assert_streams_as_the_references(StreamingModel(lean, 1, str(model.path)), model, case)


def assert_streams_as_the_references(m, model, case):
    xs = rng.uniform(-1, 1, (STEPS, int(np.prod(case.x_shape)))).astype(np.float32)
    if case.positive:
        xs = np.abs(xs) + 0.1
    ys = np.stack([m.step(x) for x in xs])
    for engine in case.engines:
        reference = model.reference(engine, xs)
        assert ys.shape == reference.shape, engine
        atol = RTOL * max(1.0, np.abs(reference).max()) if case.atol is None else case.atol
        np.testing.assert_allclose(ys, reference, rtol=RTOL, atol=atol, err_msg=f"{case.name} vs {engine}")


def test_slices_of_a_conv_are_views_of_the_positions_it_computes(tmp_path):
    """Silero's STFT: the Conv computes only the frames its two Slices read and writes them so
    that each Slice (real half, imaginary half) is a view of its result, not a copy: the
    COPYs of the plan are the reflect Pad's and the output's Concat (front_end_model's)."""
    case = next(c for c in CASES if c.name.startswith("conv1d STFT magnitude"))
    model = front_end_model(tmp_path, case.nodes, case.x_shape, case.initializers)
    code = edgeseq_runtime.lower_model(str(model.path)).plan.code
    records, pc = [], code[isa.HEADER.START]
    while pc < code[isa.HEADER.END]:
        records.append(pc)
        pc += code[pc + isa.RECORD.LENGTH]
    opcodes = [code[pc + isa.RECORD.OPCODE] for pc in records]
    assert opcodes.count(isa.OPCODE.COPY) == 2
    conv = records[opcodes.index(isa.OPCODE.CONV)] + isa.RECORD.FIELDS
    assert code[conv + isa.CONV.OUT_W] == code[conv + isa.CONV.Y_WIDTH] == 3  # frames 1 to 3 of 0 to 4


def test_run_gives_the_numbers_of_repeated_steps(tmp_path):
    case = conv("conv", (1, 5, 40), (24, 5, 3), pads=[1, 1], strides=[2])
    model = front_end_model(tmp_path, case.nodes, case.x_shape, case.initializers)
    xs = rng.uniform(-1, 1, (10, 200)).astype(np.float32)
    stepped = edgeseq_runtime.load(str(model.path))
    np.testing.assert_array_equal(edgeseq_runtime.load(str(model.path)).run(xs), np.stack([stepped.step(x) for x in xs]))



def large_bias_conv(positions):
    """(W, B, X) of a Conv whose small taps sit next to a large bias, as Silero VAD's first encoder
    conv on near-silence (biases up to 19, 387 taps summing to 0.1): 129 channels x 3 taps, 19
    outputs (the tiles and the outputs past them), biases of 16 to 30, X in [0, 1e-3)."""
    local = np.random.default_rng(15)
    w = local.uniform(-0.5, 0.5, (19, 129, 3)).astype(np.float32)
    b = (local.uniform(16, 30, 19) * local.choice([-1, 1], 19)).astype(np.float32)
    return w, b, local.uniform(0, 1e-3, (1, 129, positions)).astype(np.float32)


def assert_bias_after_taps(y, w, b, x):
    """Each output y[co, t] of Conv(x, w, b, pads=[1, 1]) is within the error bound of summing its
    taps in float32 and then adding the bias (one rounding), against float64. Carried from the
    bias, the sum is rounded to the bias's precision at every tap: 5 to 20 ulp of the result,
    which Silero's LSTM turned into 4e-4 of its probability."""
    padded = np.pad(x[0].astype(np.float64), ((0, 0), (1, 1)))
    patches = np.stack([padded[:, t:t + 3] for t in range(x.shape[2])])  # (positions, c_in, 3)
    exact = np.einsum("oik,tik->ot", w.astype(np.float64), patches) + b[:, None]
    magnitude = np.einsum("oik,tik->ot", np.abs(w.astype(np.float64)), patches)
    u, taps = 2.0 ** -24, w[0].size
    bound = 2 * u * np.abs(exact) + taps * u / (1 - taps * u) * magnitude
    worst = np.unravel_index(np.argmax(np.abs(y - exact) / bound), bound.shape)
    assert np.abs(y - exact)[worst] <= bound[worst], f"{np.abs(y - exact)[worst]:.2e} from float64, bound {bound[worst]:.2e}"


@pytest.mark.parametrize("lean", [False, True], ids=["load", "lean"])
@pytest.mark.parametrize("positions", [1, 3, 6, 70])  # one row, a pair and one, strips of tiles, panels
def test_a_conv_adds_its_bias_after_its_taps(tmp_path, positions, lean):
    w, b, x = large_bias_conv(positions)
    graph = helper.make_graph(
        [node("Conv", ["x", "W", "B"], ["y"], pads=[1, 1])], "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, len(b), positions])],
        [onnx.numpy_helper.from_array(w, "W"), onnx.numpy_helper.from_array(b, "B")])
    path = tmp_path / "conv.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    m = StreamingModel(edgeseq_runtime.lower_model(str(path), lean=True), 1, str(path)) if lean \
        else edgeseq_runtime.load(str(path))
    assert_bias_after_taps(m.step(x.ravel()).reshape(len(b), positions), w, b, x)


W3 = ("W", np.ones((4, 3, 3), np.float32))


@pytest.mark.parametrize("nodes, initializers, attribute", [
    (node("Conv", ["x", "W"], strides=[0]), [W3], "strides"),
    (node("Conv", ["x", "W"], dilations=[1, 1]), [W3], "dilations"),
    (node("Conv", ["x", "W"], pads=[-1, 0]), [W3], "pads"),
    (node("Conv", ["x", "W"], kernel_shape=[2]), [W3], "kernel_shape"),
    (node("Conv", ["x", "W"], auto_pad="SAME"), [W3], "auto_pad"),
    (node("ConvTranspose", ["x", "W"], pads=[9, 9]), [("W", np.ones((3, 2, 3), np.float32))], "pads"),
    (node("ReduceMean", ["x", "axes"]), [ints("axes", [1, 1])], "axes"),
    (node("ReduceSum", ["x"], keepdims=2), [], "keepdims"),
    (node("LayerNormalization", ["x", "s"], axis=5), [("s", np.ones(12, np.float32))], "axis"),
    (node("BatchNormalization", ["x", "s", "s", "s", "s"], training_mode=1), [("s", np.ones(3, np.float32))],
     "training_mode"),
], ids=lambda v: v.op_type if isinstance(v, onnx.NodeProto) else None)
def test_bad_attribute_names_op_node_and_attribute(tmp_path, nodes, initializers, attribute):
    """Each bad attribute gives a ModelError naming the op, the node and the attribute (the model
    is written unchecked: the checker would refuse some of these first)."""
    graph = onnx.helper.make_graph(
        [nodes, node("Flatten", ["features"], ["y"])], "bad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "n"])],
        [onnx.numpy_helper.from_array(v, n) for n, v in initializers])
    path = tmp_path / "bad.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    with pytest.raises(ModelError) as info:
        edgeseq_runtime.load(str(path))
    message = str(info.value)
    assert nodes.op_type in message and nodes.name in message and attribute in message and "\n" not in message, message


QUANTIZED_FRONT_ENDS = [
    conv("conv1d", (1, 3, 12), (16, 3, 3), pads=[1, 1]),
    conv("conv1d few filters (stored by output)", (1, 3, 12), (4, 3, 3), strides=[2]),
    conv("conv2d group", (1, 4, 5, 6), (8, 2, 3, 3), group=2),
    # frames read in place, four at a time and the two left (the C runtime's lean plan)
    conv("conv1d STFT-like, six frames", (1, 1, 96), (16, 1, 32), strides=[12]),
    Case("conv1d depthwise in place + relu", [node("Conv", ["x", "W", "B"], ["conv"], group=2, strides=[3]),
                                              node("Relu", ["conv"])],
         (1, 2, 20), [("W", weights(16, 1, 5)), ("B", weights(16))]),
    conv_transpose("convtranspose1d", (1, 3, 5), (3, 2, 3), strides=[2], engines=("onnxruntime",)),
    Case("conv + batchnorm (folded into int8 filters)",
         [node("Conv", ["x", "W", "B"], ["conv"], pads=[1, 1]), node("BatchNormalization", ["conv", "s", "b", "m", "v"])],
         (1, 3, 8), [("W", weights(16, 3, 3)), ("B", weights(16)), ("s", weights(16)), ("b", weights(16)),
                     ("m", weights(16)), ("v", weights(16) ** 2 + 0.1)]),
]


@pytest.mark.parametrize("mode", ["int8", "fp16"])
@pytest.mark.parametrize("case", QUANTIZED_FRONT_ENDS, ids=lambda c: c.name)
def test_quantized_front_end_computes_as_onnx_runtime_on_the_quantized_file(tmp_path, case, mode):
    """``quantize`` converts a Conv's W (int8: one scale per filter, axis 0; fp16: behind a Cast),
    and the runtime computes the quantized file as ONNX Runtime does, int8 filters kept int8."""
    from edgeseq_export.backends.quantize import quantize

    model = front_end_model(tmp_path, case.nodes, case.x_shape, case.initializers)
    target = tmp_path / f"{mode}.onnx"
    report = quantize(model.path, target, mode)
    assert "W" in report.quantized
    quantized = type(model)(target, model.x_shape)
    m = edgeseq_runtime.load(str(target))
    if mode == "int8" and case.nodes[0].op_type == "Conv":  # the filters (folded with the batch norm) stay int8
        assert m._qweights.size >= np.prod([v for n, v in case.initializers if n == "W"][0].shape)
    xs = rng.uniform(-1, 1, (STEPS, int(np.prod(case.x_shape)))).astype(np.float32)
    ys = np.stack([m.step(x) for x in xs])
    reference = quantized.reference("onnxruntime", xs)
    np.testing.assert_allclose(ys, reference, rtol=RTOL, atol=RTOL * max(1.0, np.abs(reference).max()))


def test_quantize_finds_weights_read_inside_if_branches(tmp_path):
    """An initializer read only by a Conv inside an If branch (Silero's op18 file) is a weight."""
    from edgeseq_export.backends.quantize import weight_axes

    branch = helper.make_graph([node("Conv", ["x", "W"], ["y"])], "branch", [],
                               [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    shadowing = helper.make_graph([node("Constant", [], ["W"], value=onnx.numpy_helper.from_array(np.ones((2, 1, 1), np.float32))),
                                   node("Conv", ["x", "W"], ["y"])], "shadowing", [],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    graph = helper.make_graph([node("If", ["flag"], ["y"], then_branch=branch, else_branch=branch),
                               node("If", ["flag"], ["z"], then_branch=shadowing, else_branch=shadowing)], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4]),
                               helper.make_tensor_value_info("flag", TensorProto.BOOL, [])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [onnx.numpy_helper.from_array(np.ones((2, 1, 3), np.float32), "W")])
    assert weight_axes(graph) == {"W": 0}
