"""edgeseq's PyTorch model family (``edgeseq.models``) and its checkpoints.

A ``SequenceModel`` trains batch-first, saves a checkpoint that ``torch.load(weights_only=True)``
reads without edgeseq's classes, and exports as it is. Normalisation is applied inside the model,
so the exported graph takes and gives values in the data's units: checked against a reference
written here from plain ``torch.nn`` layers and the formula, and against ONNX Runtime.
"""

import json

import numpy as np
import onnx
import pytest
import torch
from edgeseq_export.errors import SourceError
from support.export_cases import streamed_outputs
from torch import nn

import edgeseq
from edgeseq.models import ModelConfig, SequenceModel, load_checkpoint, save_checkpoint

CONFIGS = {
    "lstm_regression": ModelConfig("lstm", input_size=3, hidden_size=8, outputs=2),
    "gru_classification_2layers": ModelConfig("gru", input_size=3, hidden_size=8, num_layers=2,
                                              dropout=0.2, task="classification", outputs=4),
    "rnn_regression": ModelConfig("rnn", input_size=2, hidden_size=8),
    "lstm_tokens": ModelConfig("lstm", input_size=5, hidden_size=8, task="tokens", vocab_size=13),
    "gru_token_classification": ModelConfig("gru", input_size=5, hidden_size=8, task="classification",
                                            outputs=3, vocab_size=13),
    "lstm_regression_normalised": ModelConfig("lstm", input_size=3, hidden_size=8, num_layers=2,
                                              outputs=2, normalise=True),
}


def _model(config: ModelConfig, seed: int = 0) -> SequenceModel:
    torch.manual_seed(seed)
    model = SequenceModel(config)
    if config.normalise:
        model.set_normalisation(input_mean=[10.0, -5.0, 0.5], input_std=[2.0, 0.5, 3.0],
                                output_mean=[1000.0, -20.0], output_std=[250.0, 4.0])
    return model


def _batch(config: ModelConfig, batch=4, steps=7, seed=0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    if config.vocab_size:
        return torch.randint(0, config.vocab_size, (batch, steps), generator=generator)
    return torch.randn(batch, steps, config.input_size, generator=generator)


@pytest.mark.parametrize("name", CONFIGS)
def test_forward_trains_batch_first(name):
    config = CONFIGS[name]
    model = _model(config).train()
    x = _batch(config)
    y, state = model(x)
    assert y.shape == (4, 7, config.outputs)
    assert [tuple(s.shape) for s in state] == [(config.num_layers, 4, config.hidden_size)] * len(state)
    assert len(state) == (2 if config.cell == "lstm" else 1)
    y.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())
    # State carried across calls gives the same as one call on the whole sequence.
    model.eval()
    with torch.no_grad():
        whole, _ = model(x)
        first, carried = model(x[:, :3])
        rest, _ = model(x[:, 3:], carried)
    torch.testing.assert_close(torch.cat([first, rest], dim=1), whole)


@pytest.mark.parametrize("name", CONFIGS)
def test_checkpoint_reloads_without_code_and_exports(tmp_path, name):
    config = CONFIGS[name]
    model = _model(config).eval()
    path = tmp_path / "model.pt"
    save_checkpoint(model, path, metrics={"val_rmse": 0.25, "history": [1.0, 0.5]},
                    training={"column": "sales", "window": 12, "seed": 3})

    raw = torch.load(path, weights_only=True)  # plain data: no edgeseq class is needed
    assert raw["format"] == "edgeseq.checkpoint" and raw["config"]["cell"] == config.cell
    checkpoint = load_checkpoint(path)
    assert checkpoint.model.config == config and not checkpoint.model.training
    assert checkpoint.metrics == {"val_rmse": 0.25, "history": [1.0, 0.5]}
    assert checkpoint.training["window"] == 12
    x = _batch(config, batch=1 if config.normalise else 4)  # see test_runtime_batch_axis_through_normalisation
    with torch.no_grad():
        torch.testing.assert_close(checkpoint.model(x)[0], model(x)[0], rtol=0, atol=0)

    report = edgeseq.export(path, tmp_path / "model.onnx")
    assert report.form == "edgeseq checkpoint" and report.verification.ok
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "model.onnx")).metadata_props}
    assert json.loads(props["edgeseq.task"]) == config.task_description()
    x_tbi = x.transpose(0, 1).numpy()
    with torch.no_grad():
        expected = model(x)[0].transpose(0, 1).numpy()
    for runtime, y in streamed_outputs(tmp_path / "model.onnx", x_tbi, batch_first=True).items():
        np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(expected).max()),
                                   err_msg=runtime)


def _normalised_reference(model: SequenceModel, x: torch.Tensor) -> torch.Tensor:
    """The normalised model, from plain torch.nn layers and the formula written out."""
    lstm = nn.LSTM(3, 8, num_layers=2, batch_first=True)
    head = nn.Linear(8, 2)
    lstm.load_state_dict(model.recurrent[0].state_dict())
    head.load_state_dict(model.head[0].state_dict())
    mean, std = torch.tensor([10.0, -5.0, 0.5]), torch.tensor([2.0, 0.5, 3.0])
    out_mean, out_std = torch.tensor([1000.0, -20.0]), torch.tensor([250.0, 4.0])
    with torch.no_grad():
        return head(lstm((x - mean) / std)[0]) * out_std + out_mean


def test_exported_graph_applies_the_normalisation(tmp_path):
    config = CONFIGS["lstm_regression_normalised"]
    model = _model(config).eval()
    save_checkpoint(model, tmp_path / "model.pt")
    report = edgeseq.export(tmp_path / "model.pt", tmp_path / "model.onnx")
    assert report.verification.normalised_units

    x = torch.randn(1, 20, 3) * torch.tensor([2.0, 0.5, 3.0]) + torch.tensor([10.0, -5.0, 0.5])
    expected = _normalised_reference(model, x).transpose(0, 1).numpy()
    for runtime, y in streamed_outputs(tmp_path / "model.onnx", x.transpose(0, 1).numpy(), True).items():
        np.testing.assert_allclose(y, expected, rtol=2e-5, atol=1e-3, err_msg=runtime)  # sales in the 1000s

    graph = onnx.load(str(tmp_path / "model.onnx"))
    ops = [node.op_type for node in graph.graph.node]
    assert "Sub" in ops and "Div" in ops, "the input normalisation is part of the graph"
    recorded = json.loads({p.key: p.value for p in graph.metadata_props}["edgeseq.normalisation"])
    assert recorded == {"applied_in_graph": True, "input_mean": [10.0, -5.0, 0.5], "input_std": [2.0, 0.5, 3.0],
                        "output_mean": [1000.0, -20.0], "output_std": [250.0, 4.0]}


def test_normalised_model_streams_several_streams(tmp_path):
    """The normalisation's Sub/Div stand between x and the LSTM: the runtime must still find
    the batch axis, and every stream must match PyTorch."""
    save_checkpoint(_model(CONFIGS["lstm_regression_normalised"]), tmp_path / "model.pt")
    edgeseq.export(tmp_path / "model.pt", tmp_path / "model.onnx", verify=False)
    assert edgeseq.load(tmp_path / "model.onnx", batch=3).batch == 3
    report = edgeseq.verify(tmp_path / "model.onnx", tmp_path / "model.pt", batch=3)
    assert report.ok


def test_sequence_model_exports_directly(tmp_path):
    model = _model(CONFIGS["gru_classification_2layers"]).train()
    report = edgeseq.export(model, tmp_path / "model.onnx")
    assert report.form == "module" and model.training
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "model.onnx")).metadata_props}
    assert json.loads(props["edgeseq.task"]) == {"kind": "classification", "classes": 4}


@pytest.mark.parametrize("fields, message", [
    (dict(cell="transformer"), "cell 'transformer'"),
    (dict(task="classification"), "number of classes"),
    (dict(task="tokens"), "vocab_size > 0"),
    (dict(task="classification", outputs=1), "at least 2 classes"),
    (dict(dropout=1.0), "dropout"),
    (dict(vocab_size=5, task="classification", outputs=3, normalise=True), "nothing to normalise"),
])
def test_invalid_configs_say_why(fields, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**fields)


def test_normalisation_values_are_checked():
    model = SequenceModel(cell="gru", input_size=2, normalise=True)
    with pytest.raises(ValueError, match="input_std must be positive"):
        model.set_normalisation(input_std=[1.0, 0.0])
    with pytest.raises(ValueError, match="2 finite values"):
        model.set_normalisation(input_mean=[1.0])
    with pytest.raises(ValueError, match="no input normalisation"):
        SequenceModel(cell="gru").set_normalisation(input_mean=[0.0])


def test_metrics_must_be_plain_data(tmp_path):
    with pytest.raises(ValueError, match="plain data"):
        save_checkpoint(SequenceModel(), tmp_path / "model.pt", metrics={"when": object()})
    assert not (tmp_path / "model.pt").exists()


@pytest.mark.parametrize("damage, message", [
    (lambda data: data.update(version=99), "version 99"),
    (lambda data: data["config"].update(hidden_size=5), "damaged edgeseq checkpoint"),
    (lambda data: data.pop("state_dict"), "damaged edgeseq checkpoint"),
], ids=["future_version", "config_does_not_fit_weights", "no_weights"])
def test_damaged_checkpoints_are_refused(tmp_path, damage, message):
    save_checkpoint(SequenceModel(), tmp_path / "model.pt")
    data = torch.load(tmp_path / "model.pt", weights_only=True)
    damage(data)
    torch.save(data, tmp_path / "model.pt")
    with pytest.raises(SourceError, match=message):
        edgeseq.export(tmp_path / "model.pt", tmp_path / "model.onnx")
