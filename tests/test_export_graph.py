"""What ``edgeseq export`` writes: a one-file, checker-clean streaming graph that describes itself.

Native LSTM/GRU/RNN nodes with the TorchScript exporter (the default); the dynamo exporter's
graphs stream as well (it unrolls nn.RNN); an LSTM with ``proj_size`` is written out as a cell
that ONNX Runtime and edgeseq step with its state fed back. And the 2-layer, 128-unit LSTM of
the issue exports and verifies in under 10 s.
"""

import hashlib
import json
import os
import time

import onnx
import pytest
import torch
from edgeseq_export.onnx_model.step_graph import OPSET
from support.export_cases import UserSpec, assert_streams_like, build, node_types, random_inputs

import edgeseq

NATIVE = {"LSTM": UserSpec("LSTM", num_layers=2), "GRU": UserSpec("GRU", batch_first=True),
          "RNN": UserSpec("RNN", nonlinearity="relu")}


def _export(tmp_path, spec, **options):
    model = build(spec)
    torch.save(model.state_dict(), tmp_path / "model.pt")
    options.setdefault("batch_first", spec.batch_first or None)
    options.setdefault("nonlinearity", spec.nonlinearity if spec.cell == "RNN" else None)
    report = edgeseq.export(tmp_path / "model.pt", tmp_path / "model.onnx", **options)
    return model, report


@pytest.mark.parametrize("cell", NATIVE)
def test_native_recurrent_node_in_one_checked_file(tmp_path, cell):
    _, report = _export(tmp_path, NATIVE[cell])
    model = onnx.load(report.path)
    onnx.checker.check_model(model, full_check=True)
    ops = [node.op_type for node in model.graph.node]
    assert ops.count(cell) == NATIVE[cell].num_layers and not {"Loop", "Scan"} & set(ops)
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    assert opset == OPSET and opset >= 17
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    assert sorted(os.listdir(tmp_path)) == ["model.onnx", "model.pt"], "weights inside, no stray file"
    assert [i.name for i in model.graph.input] == ["x", "h0", *(["c0"] if cell == "LSTM" else [])]
    assert [o.name for o in model.graph.output] == ["y", "h0_next", *(["c0_next"] if cell == "LSTM" else [])]


def test_metadata_describes_the_model(tmp_path):
    spec = UserSpec("LSTM", num_layers=2, proj_size=3, vocab_size=7, head=(7,), batch_first=True)
    _, report = _export(tmp_path, spec)
    props = {p.key: p.value for p in onnx.load(report.path).metadata_props}
    assert props["edgeseq.version"] == edgeseq.__version__
    assert props["edgeseq.source_sha256"] == hashlib.sha256((tmp_path / "model.pt").read_bytes()).hexdigest()
    assert props["edgeseq.source_file"] == "model.pt" and props["edgeseq.source_form"] == "state_dict"
    assert props["edgeseq.cells"] == "lstm" and props["edgeseq.exporter"] == "torchscript"
    assert json.loads(props["edgeseq.input"]) == {"name": "x", "shape": ["batch", "time"], "dtype": "int64",
                                                  "vocab_size": 7}
    assert json.loads(props["edgeseq.output"])["shape"] == ["batch", "time", 7]
    assert json.loads(props["edgeseq.states"]) == [
        {"input": "h0", "output": "h0_next", "shape": [2, "batch", 3]},
        {"input": "c0", "output": "c0_next", "shape": [2, "batch", 8]}]
    assert json.loads(props["edgeseq.task"]) == {"kind": "unknown"}
    architecture = json.loads(props["edgeseq.architecture"])
    assert architecture["recurrent"][0]["proj_size"] == 3 and architecture["vocab_size"] == 7
    assert json.loads(props["edgeseq.read_options"]) == {"batch_first": True}
    assert "edgeseq.normalisation" not in props  # only when the model carries one


def test_lstm_with_projection_is_a_written_out_cell(tmp_path):
    spec = UserSpec("LSTM", num_layers=2, proj_size=3, bias=False)
    model, report = _export(tmp_path, spec)
    ops = node_types(report.path)
    assert "LSTM" not in ops and {"Sigmoid", "Tanh", "MatMul"} <= set(ops)
    x = onnx.load(report.path).graph.input[0]
    assert [d.dim_param or d.dim_value for d in x.type.tensor_type.shape.dim] == [1, "batch", 4]  # one step
    assert_streams_like(report.path, model, random_inputs(spec, steps=40), batch_first=False)


@pytest.mark.parametrize("spec", [UserSpec("LSTM", num_layers=2, proj_size=3, batch_first=True),
                                  UserSpec("RNN", bias=False)], ids=["lstm_proj", "rnn"])
@pytest.mark.slow  # torch.onnx's dynamo exporter takes seconds a model
def test_dynamo_exporter_path(tmp_path, spec):
    model, report = _export(tmp_path, spec, exporter="dynamo")
    assert report.verification.ok and report.exporter == "dynamo"
    assert sorted(os.listdir(tmp_path)) == ["model.onnx", "model.pt"], "no .onnx.data file"
    onnx.checker.check_model(onnx.load(report.path), full_check=True)
    assert "RNN" not in node_types(report.path)  # dynamo unrolls nn.RNN: fed back like a written-out cell
    assert_streams_like(report.path, model, random_inputs(spec), spec.batch_first)


def test_export_replaces_a_file_atomically(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"old")
    _export(tmp_path, UserSpec("GRU"), verify=False)
    assert onnx.load(str(tmp_path / "model.onnx")).graph.node
    assert sorted(os.listdir(tmp_path)) == ["model.onnx", "model.pt"]


def test_two_layer_128_unit_lstm_exports_and_verifies_in_under_10_s(tmp_path):
    spec = UserSpec("LSTM", input_size=8, hidden_size=128, num_layers=2, head=(1,))
    torch.save(build(spec).state_dict(), tmp_path / "model.pt")
    start = time.perf_counter()
    report = edgeseq.export(tmp_path / "model.pt", tmp_path / "model.onnx")
    seconds = time.perf_counter() - start
    print(f"2-layer 128-unit LSTM: exported and verified over {report.verification.steps} steps in "
          f"{seconds:.2f} s")
    assert report.verification.ok and seconds < 10
