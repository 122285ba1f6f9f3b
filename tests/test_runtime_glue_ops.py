"""The glue of the conv + recurrent families that the front-end suite leaves out: Pad with
negative pads (crops), DepthToSpace / SpaceToDepth, GatherND / GatherElements, MaxPool /
AveragePool and their global forms, HardSwish, ScatterND / ScatterElements with a reduction (add,
mul, max, min; updates that meet at one target too), attribute by attribute against ONNX Runtime
and onnx.reference (<= 1e-5 relative), each between the model input and an LSTM that streams them
(tests/support/front_end_models.py); against ONNX Runtime alone where onnx.reference cannot run
the case (negative pads, a 1-D GlobalMaxPool, a padded MaxPool, a negative GatherElements axis).
Then the ops still outside the set: each refused naming op, node and reason.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from support.front_end_models import front_end_model

import edgeseq_runtime
from edgeseq_runtime import ModelError

STEPS = 5
RTOL = 1e-5
rng = np.random.default_rng(17)


def node(op, inputs, **attrs):
    return helper.make_node(op, list(inputs), ["features"], name=f"{op.lower()}_under_test", **attrs)


def ints(name, values):
    return (name, np.asarray(values, np.int64))


def floats(name, *shape):
    return (name, rng.uniform(-1, 1, shape).astype(np.float32))


CASES = {
    # Pad: negative pads crop before the rest pads (ONNX Runtime's order)
    "pad constant, crop and pad": (node("Pad", ["x", "pads", "value"]), (1, 2, 7),
                                   [ints("pads", [0, 0, -2, 0, 1, 3]), ("value", np.float32(0.5))], {"engines": ("onnxruntime",)}),
    "pad reflect, crop start, pad end": (node("Pad", ["x", "pads"], mode="reflect"), (1, 2, 9),
                                         [ints("pads", [0, 0, -3, 0, 0, 2])], {"engines": ("onnxruntime",)}),
    "pad edge, crop both ends": (node("Pad", ["x", "pads"], mode="edge"), (1, 3, 8),
                                 [ints("pads", [0, -1, -2, 0, 1, -1])], {"engines": ("onnxruntime",)}),
    "pad constant, negative on axes": (node("Pad", ["x", "pads", "", "axes"]), (1, 2, 6),
                                       [ints("pads", [-1, 2]), ints("axes", [-1])], {"engines": ("onnxruntime",)}),
    # rearrangements
    "depthtospace DCR": (node("DepthToSpace", ["x"], blocksize=2), (1, 8, 2, 3), [], {}),
    "depthtospace CRD": (node("DepthToSpace", ["x"], blocksize=2, mode="CRD"), (1, 8, 2, 3), [], {}),
    "spacetodepth": (node("SpaceToDepth", ["x"], blocksize=2), (1, 2, 4, 6), [], {}),
    "gathernd": (node("GatherND", ["x", "i"]), (2, 3, 4), [ints("i", [[0, 1], [1, -1]])], {}),
    "gathernd batch_dims": (node("GatherND", ["x", "i"], batch_dims=1), (2, 3, 4), [ints("i", [[2], [0]])], {}),
    "gatherelements": (node("GatherElements", ["x", "i"], axis=2), (1, 3, 4), [ints("i", [[[0, 3], [1, 1], [-1, 0]]])],
                       {}),
    "gatherelements negative axis": (node("GatherElements", ["x", "i"], axis=-2), (1, 3, 4),
                                     [ints("i", [[[0, 2, 1, 1], [2, -1, 0, 0]]])], {"engines": ("onnxruntime",)}),
    # global pools
    "globalaveragepool 1-D": (node("GlobalAveragePool", ["x"]), (1, 3, 7), [], {}),
    "globalaveragepool 2-D": (node("GlobalAveragePool", ["x"]), (1, 3, 4, 5), [], {}),
    "globalmaxpool 1-D": (node("GlobalMaxPool", ["x"]), (1, 3, 7), [], {"engines": ("onnxruntime",)}),
    "globalmaxpool 2-D": (node("GlobalMaxPool", ["x"]), (2, 3, 2, 5), [], {}),
    "hardswish": (node("HardSwish", ["x"]), (1, 3, 8), [], {"scale": 4.0}),
    # pools: every window attribute (onnx.reference's MaxPool mis-indexes padded windows: ONNX Runtime there)
    **{f"{op.lower()} {label}": (node(op, ["x"], **attrs), shape, [],
                                 {"engines": ("onnxruntime",)} if op == "MaxPool" and padded else
                                 {"opset": 19} if "dilations" in attrs else {})
       for op in ("MaxPool", "AveragePool")
       for label, shape, attrs, padded in [
           ("1-D", (1, 3, 8), {"kernel_shape": [3]}, False),
           ("1-D strides", (1, 3, 9), {"kernel_shape": [3], "strides": [2]}, False),
           ("1-D pads", (1, 3, 8), {"kernel_shape": [3], "pads": [1, 2]}, True),
           ("1-D dilations", (1, 3, 9), {"kernel_shape": [2], "dilations": [3]}, False),
           ("1-D ceil_mode", (1, 3, 8), {"kernel_shape": [3], "strides": [2], "ceil_mode": 1}, False),
           ("1-D ceil_mode pads", (1, 3, 7), {"kernel_shape": [3], "strides": [2], "pads": [2, 1], "ceil_mode": 1}, True),
           ("1-D SAME_UPPER", (1, 3, 8), {"kernel_shape": [3], "strides": [2], "auto_pad": "SAME_UPPER"}, True),
           ("1-D SAME_LOWER", (1, 3, 8), {"kernel_shape": [4], "auto_pad": "SAME_LOWER"}, True),
           ("2-D", (1, 2, 6, 5), {"kernel_shape": [3, 2], "strides": [2, 1]}, False),
           ("2-D pads", (2, 2, 6, 5), {"kernel_shape": [3, 2], "pads": [1, 0, 1, 1]}, True),
       ]},
    "averagepool count_include_pad": (node("AveragePool", ["x"], kernel_shape=[3], pads=[1, 2], count_include_pad=1),
                                      (1, 3, 8), [], {}),
    # scatters with a reduction; indices that meet at one target are applied in order
    "scatternd add": (node("ScatterND", ["x", "i", "u"], reduction="add"), (1, 3, 5),
                      [ints("i", [[0, 2], [0, 0], [0, 2]]), floats("u", 3, 5)], {}),
    "scatternd mul, element indices": (node("ScatterND", ["x", "i", "u"], reduction="mul"), (1, 3, 5),
                                       [ints("i", [[0, 1, 4], [0, 1, 4], [0, 2, -1]]), floats("u", 3)], {}),
    "scatternd add of run-time updates": (
        [helper.make_node("Slice", ["x", "s", "e", "a"], ["u"]),
         node("ScatterND", ["x", "i", "u"], reduction="add")], (1, 3, 5),
        [ints("i", [[[0, 1], [0, 1]]]), ints("s", [0]), ints("e", [2]), ints("a", [1])], {}),
    "scatterelements add axis 2": (node("ScatterElements", ["x", "i", "u"], axis=2, reduction="add"), (1, 3, 5),
                                   [ints("i", [[[0, 4, 0], [1, 1, 1], [-1, 2, 3]]]), floats("u", 1, 3, 3)], {}),
    "scatternd max": (node("ScatterND", ["x", "i", "u"], reduction="max"), (1, 3, 5),
                      [ints("i", [[0, 1], [0, 1], [0, 2]]), floats("u", 3, 5)], {}),
    "scatterelements min axis 2": (node("ScatterElements", ["x", "i", "u"], axis=2, reduction="min"), (1, 3, 5),
                                   [ints("i", [[[0, 0, 4], [3, 3, 3], [1, 2, 1]]]), floats("u", 1, 3, 3)], {}),
    "scatterelements mul axis 1": (node("ScatterElements", ["x", "i", "u"], axis=1, reduction="mul"), (1, 3, 5),
                                   [ints("i", [[[2, 0, 2, 1, 0]]]), floats("u", 1, 1, 5)], {}),
}


@pytest.mark.parametrize("name", CASES)
def test_op_streams_as_the_references_compute_it(tmp_path, name):
    nodes, x_shape, initializers, options = CASES[name]
    model = front_end_model(tmp_path, nodes if isinstance(nodes, list) else [nodes], x_shape, initializers,
                            **{k: v for k, v in options.items() if k == "opset"})
    m = edgeseq_runtime.load(str(model.path))
    xs = rng.uniform(-1, 1, (STEPS, int(np.prod(x_shape)))).astype(np.float32) * options.get("scale", 1.0)
    ys = np.stack([m.step(x) for x in xs])
    for engine in options.get("engines", ("onnxruntime", "onnx")):
        reference = model.reference(engine, xs)
        atol = RTOL * max(1.0, np.abs(reference).max())
        np.testing.assert_allclose(ys, reference, rtol=RTOL, atol=atol, err_msg=f"{name} vs {engine}")


@pytest.mark.parametrize("nodes, initializers, reason", [
    (helper.make_node("MaxPool", ["x"], ["features", "where"], name="maxpool_under_test", kernel_shape=[2]), [],
     "output Indices is not supported"),
    (node("Pad", ["x", "pads"]), [ints("pads", [0, 0, -5, 0, 0, -3])], r"pads \[0, 0, -5, 0, 0, -3\] crop more than"),
    (node("ScatterND", ["x", "i", "u"], reduction="sum"), [ints("i", [[0, 1]]), floats("u", 1, 6)],
     r"reduction='sum' is not supported \(none, add, mul, max, min\)"),
    (node("ScatterElements", ["x", "i", "u"], axis=2, reduction="add"), [ints("i", [[[9]]]), floats("u", 1, 1, 1)],
     "indices do not index the data"),
    (helper.make_node("LayerNormalization", ["x", "s"], ["features", "mean"], name="layernormalization_under_test"),
     [("s", np.ones(6, np.float32))], "outputs Mean and InvStdDev are not supported"),
], ids=["maxpool indices", "pad crops all", "scatternd sum", "scatter out of range",
        "layernorm mean"])
def test_what_stays_outside_is_refused_by_name(tmp_path, nodes, initializers, reason):
    op = nodes.op_type
    with pytest.raises(ModelError, match=rf"'{op.lower()}_under_test' \({op}\): {reason}"):
        edgeseq_runtime.load(str(_one_node_model(tmp_path, nodes, initializers)))


def _one_node_model(tmp_path, front, initializers):
    """x [1, 3, 6] -> front -> features, the graph output (no LSTM: the load stops before one)."""
    graph = helper.make_graph([front], "outside", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 6])],
                              [helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, 3, 6])],
                              [numpy_helper.from_array(np.asarray(v), k) for k, v in initializers])
    path = tmp_path / "outside.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)
    return path
