"""Graph.reads: the names a node reads, through If branches nested in If branches (ONNX scoping:
a branch reads the enclosing scopes' values by name, and what its own nodes define shadows them)."""

import numpy as np
from edgeseq_runtime.graph import Graph
from onnx import TensorProto, helper, numpy_helper


def _nested_ifs():
    """out = If(c) then: b = If(c) then a * z else a, with a = x + k; else: z as is."""
    inner = helper.make_node("If", ["c"], ["b"], then_branch=helper.make_graph(
        [helper.make_node("Mul", ["a", "z"], ["m"])], "inner_then", [],
        [helper.make_tensor_value_info("m", TensorProto.FLOAT, [1])]), else_branch=helper.make_graph(
        [helper.make_node("Identity", ["a"], ["e"])], "inner_else", [],
        [helper.make_tensor_value_info("e", TensorProto.FLOAT, [1])]))
    add = helper.make_node("Add", ["x", "k"], ["a"])
    outer = helper.make_node("If", ["c"], ["out"], then_branch=helper.make_graph(
        [add, inner], "then", [], [helper.make_tensor_value_info("b", TensorProto.FLOAT, [1])]),
        else_branch=helper.make_graph([], "else", [], [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1])]))
    graph = helper.make_graph(
        [outer], "nested", [helper.make_tensor_value_info(n, t, s) for n, t, s in
                            (("x", TensorProto.FLOAT, [1]), ("z", TensorProto.FLOAT, [1]), ("c", TensorProto.BOOL, []))],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1])],
        [numpy_helper.from_array(np.ones(1, np.float32), "k")])
    return Graph(helper.make_model(graph), "nested.onnx"), outer, add, inner


def test_an_if_reads_what_its_branches_read_from_outside_and_nothing_they_define():
    graph, outer, add, inner = _nested_ifs()
    assert sorted(graph.reads(outer)) == ["c", "k", "x", "z"]  # a, m, e and b are the branches' own
    assert sorted(graph.reads(inner)) == ["a", "c", "z"]
    assert sorted(graph.reads(add)) == ["k", "x"]
    assert sorted(node.op_type for node in graph.consumers["z"]) == ["If", "If", "Mul"]


def test_reads_answers_the_same_however_often_asked():
    graph, outer, *_ = _nested_ifs()
    first = graph.reads(outer)
    assert graph.reads(graph.nodes[0]) == first and sorted(first) == ["c", "k", "x", "z"]
