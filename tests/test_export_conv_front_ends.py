"""Conv + recurrent models (CRNNs) exported from PyTorch as streaming step graphs.

Each test exports a small CRNN (tests/support/crnn_models.py) and streams it with edgeseq's
runtime, one frame a ``step`` and through ``run``, against PyTorch's full-sequence forward in
float64, aligned by the delay that the convs' padding implies (computed in the support module
from the convs' attributes): the stream's output t + delay is the forward's output t.
"""

import json
import re

import numpy as np
import onnx
import pytest
import torch
from edgeseq_export.errors import SourceError
from support.crnn_models import crnn, expected_delay, full_sequence, random_sequence
from torch import nn

import edgeseq

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning:torch.jit"),
              pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")]

STEPS = 48
TOLERANCE = 1e-5


def assert_streams_like_pytorch(path, model, steps=STEPS):
    """edgeseq's step and run over ``steps`` frames give PyTorch's full-sequence outputs, shifted by
    the delay; the steps before it give zeros."""
    delay = expected_delay(model)
    x = random_sequence(model, steps)
    reference = full_sequence(model, x)[:steps - delay]
    stream = edgeseq.load(path)
    stepped = np.stack([stream.step(frame).copy() for frame in x])
    stream.reset()
    ran = stream.run(x)
    np.testing.assert_array_equal(ran, stepped)
    assert steps - delay >= 40
    np.testing.assert_allclose(stepped[delay:], reference, rtol=0, atol=TOLERANCE)
    assert not stepped[:delay].any()
    return stream


def export(model, tmp_path, **options):
    return edgeseq.export(model, tmp_path / "crnn.onnx", steps=STEPS + 8, **options)


@pytest.mark.parametrize("padding", [0, 1, 2, "same"], ids=lambda p: f"padding={p}")
@pytest.mark.parametrize("dilation", [1, 2, 4])
def test_causal_and_padded_convs_stream_like_pytorch_aligned_by_the_delay(tmp_path, padding, dilation):
    frames = padding * dilation if isinstance(padding, int) else padding
    model = crnn(nn.Conv1d(3, 5, 3, dilation=dilation, padding=frames))
    report = export(model, tmp_path)
    assert report.architecture.delay == expected_delay(model)
    assert_streams_like_pytorch(report.path, model)


def test_several_convs_with_groups_batch_norm_and_dropout(tmp_path):
    model = crnn(nn.Conv1d(4, 8, 3, padding=1), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.3),
                 nn.Conv1d(8, 8, 3, dilation=2, groups=4), nn.BatchNorm1d(8), nn.GELU(),
                 nn.Conv1d(8, 6, 1, bias=False), nn.BatchNorm1d(6, affine=False), nn.Tanh(), cell="LSTM")
    report = export(model, tmp_path)
    assert report.architecture.delay == 1 + 4 + 0
    assert_streams_like_pytorch(report.path, model)
    ops = [node.op_type for node in onnx.load(report.path).graph.node]
    assert ops.count("Conv") == 3 and "BatchNormalization" not in ops  # folded into the convs


def test_time_first_layout(tmp_path):
    model = crnn(nn.Conv1d(3, 4, 5, padding=2), nn.SiLU(), batch_first=False, cell="LSTM")
    report = export(model, tmp_path)
    assert not report.architecture.batch_first
    assert_streams_like_pytorch(report.path, model)


ACTIVATIONS = [nn.ReLU(), nn.ReLU6(), nn.GELU(), nn.GELU(approximate="tanh"), nn.SiLU(), nn.Hardtanh(-0.5, 0.7),
               nn.LeakyReLU(0.2), nn.Tanh(), nn.Sigmoid(), nn.ELU(0.7), nn.SELU(), nn.Mish(), nn.Hardsigmoid(),
               nn.Hardswish()]


@pytest.mark.parametrize("activation", ACTIVATIONS, ids=lambda a: repr(a))
def test_each_activation_streams_like_pytorch(tmp_path, activation):
    model = crnn(nn.Conv1d(3, 4, 3, padding=1), activation, nn.Conv1d(4, 4, 2), activation)
    assert_streams_like_pytorch(export(model, tmp_path).path, model)


def test_the_state_holds_each_conv_cache_and_the_warmup_count(tmp_path):
    model = crnn(nn.Conv1d(3, 4, 3, dilation=2, padding=2), nn.ReLU(), nn.Conv1d(4, 5, 2), nn.Conv1d(5, 5, 1))
    report = export(model, tmp_path)
    stream = edgeseq.load(report.path)
    shapes = {name: value.shape for name, value in stream.get_state().items()}
    assert shapes == {"h0": (1, 1, 6), "conv0": (1, 3, 4), "conv1": (1, 4, 1), "warmup": (1, 1, 1)}
    x = random_sequence(model, STEPS)
    whole = stream.run(x)
    stream.reset()
    stream.run(x[:7])
    saved = stream.get_state()
    np.testing.assert_array_equal(saved["conv0"][0], x[3:7].T)  # the last (3 - 1) * 2 input frames
    assert saved["warmup"].item() == expected_delay(model) == 3
    resumed = stream.clone()
    resumed.set_state(saved)
    np.testing.assert_array_equal(resumed.run(x[7:]), whole[7:])


def test_metadata_and_inspect_give_the_delay(tmp_path):
    from edgeseq_export.onnx_model.inspection import inspect_model

    model = crnn(nn.Conv1d(3, 4, 5, padding=2), nn.ReLU(), nn.Conv1d(4, 4, 3, dilation=2, padding=2))
    report = export(model, tmp_path)
    props = {p.key: p.value for p in onnx.load(report.path).metadata_props}
    assert json.loads(props["edgeseq.delay"]) == 4
    states = {s["input"]: s for s in json.loads(props["edgeseq.states"])}
    assert states["conv1"] == {"input": "conv1", "output": "conv1_next", "shape": ["batch", 4, 4]}
    assert inspect_model(report.path).delay == 4
    assert any("lags the full-sequence forward by 4 steps" in note for note in report.verification.notes)


def test_batches_of_streams(tmp_path):
    model = crnn(nn.Conv1d(3, 4, 3, padding=1), nn.ELU())
    report = export(model, tmp_path, batch=3)
    stream = edgeseq.load(report.path, batch=3)
    xs = np.stack([random_sequence(model, STEPS, seed) for seed in range(3)], axis=1)
    ys = stream.run(xs)
    for lane in range(3):
        expected = full_sequence(model, xs[:, lane])[:STEPS - 1]
        np.testing.assert_allclose(ys[1:, lane], expected, rtol=0, atol=TOLERANCE)


# -- every form of MODEL.pt --------------------------------------------------------------------------


def form_model():
    return crnn(nn.Conv1d(3, 6, 3, dilation=2, padding=2), nn.BatchNorm1d(6), nn.LeakyReLU(0.1),
                nn.Conv1d(6, 6, 3, groups=3), nn.Hardtanh(-1.0, 2.0), cell="LSTM")


def test_scripted_torchscript_archive(tmp_path):
    model = form_model()
    torch.jit.save(torch.jit.script(model), tmp_path / "model.pt")
    report = edgeseq.export(tmp_path / "model.pt", tmp_path / "crnn.onnx", trust_code=True, steps=STEPS)
    assert report.form == "TorchScript archive"
    assert any("own forward" in note for note in report.verification.notes)
    assert_streams_like_pytorch(report.path, model)


def test_traced_torchscript_archive_records_conv_settings_in_its_aten_calls(tmp_path):
    model = form_model()
    example = torch.from_numpy(random_sequence(model, 12))[None]
    torch.jit.save(torch.jit.trace(model, example), tmp_path / "model.pt")
    report = edgeseq.export(tmp_path / "model.pt", tmp_path / "crnn.onnx", trust_code=True, batch_first=True,
                            steps=STEPS)
    assert report.architecture.front == form_model_architecture_front()
    assert_streams_like_pytorch(report.path, model)


def form_model_architecture_front():
    from edgeseq_export.pytorch.architecture import Activation, BatchNorm, Conv

    return (Conv(3, 6, 3, dilation=2, padding=2), BatchNorm(6), Activation("leaky_relu", (("negative_slope", 0.1),)),
            Conv(6, 6, 3, groups=3), Activation("hardtanh", (("min_val", -1.0), ("max_val", 2.0))))


def test_pickled_module(tmp_path):
    model = form_model()
    torch.save(model, tmp_path / "model.pt")
    report = edgeseq.export(tmp_path / "model.pt", tmp_path / "crnn.onnx", trust_pickle=True, steps=STEPS)
    assert report.form == "pickled module" and report.architecture.front == form_model_architecture_front()
    assert_streams_like_pytorch(report.path, model)


# -- refusals ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("front, cell, message", [
    ([nn.Conv1d(3, 4, 3, stride=2)], {}, r"module 'front.0' \(Conv1d\) has stride 2 in time: it gives one output "
                                          r"every 2 steps, and a stream gives one output a step"),
    ([nn.Conv1d(3, 4, 3, padding=1, padding_mode="reflect")], {}, r"pads with 'reflect'"),
    ([nn.Conv1d(3, 4, 3, padding=3)], {}, r"module 'front.0': conv: padding 3: a streamed conv pads 0 to "
                                          r"\(kernel - 1\) \* dilation = 2 frames"),
    ([nn.Conv1d(3, 4, 3), nn.BatchNorm1d(4, track_running_stats=False)], {}, r"keeps no running statistics"),
    ([nn.Conv1d(3, 4, 3)], {"bidirectional": True}, r"module 'rnn' is bidirectional"),
    ([nn.Conv1d(3, 4, 3), nn.LayerNorm(4)], {}, r"module 'front.1' \(LayerNorm\) is not supported"),
    ([nn.Conv1d(3, 4, 3), nn.Softshrink()], {}, r"module 'front.1' \(Softshrink\) is not supported"),
], ids=["stride 2", "reflect padding", "padding beyond the reach", "batch statistics", "bidirectional",
        "LayerNorm", "unknown activation"])
def test_refusals_name_the_module_and_the_reason(tmp_path, front, cell, message):
    model = crnn(*front)
    if cell:
        model.rnn = nn.GRU(4, 6, batch_first=True, **cell)
    with pytest.raises(SourceError, match=message):
        export(model, tmp_path)
    assert not (tmp_path / "crnn.onnx").exists()


def test_a_two_dimensional_conv_is_refused_by_name(tmp_path):
    model = crnn(nn.Conv1d(3, 4, 3))
    model.front.add_module("spectral", nn.Conv2d(1, 1, 3))
    with pytest.raises(SourceError, match=r"module 'front.spectral' \(Conv2d\) is not supported: a stream takes one "
                                          r"frame a step, so edgeseq streams nn.Conv1d over the time axis only"):
        export(model, tmp_path)


def test_attention_is_refused_by_name(tmp_path):
    model = crnn(nn.Conv1d(3, 4, 3))
    model.attention = nn.MultiheadAttention(6, 2)
    with pytest.raises(SourceError, match=r"module 'attention' \(MultiheadAttention\) is not supported: attention "
                                          r"reads the whole sequence at once"):
        export(model, tmp_path)


# -- a plain state_dict, with --front-end ------------------------------------------------------------

STATE_DICT_FRONT = ("conv(padding=2,dilation=2) batchnorm(eps=0.001) leaky_relu(negative_slope=0.1) dropout "
                    "conv(groups=3) gelu")


def state_dict_model():
    return crnn(nn.Conv1d(3, 6, 3, dilation=2, padding=2), nn.BatchNorm1d(6, eps=1e-3), nn.LeakyReLU(0.1),
                nn.Dropout(), nn.Conv1d(6, 6, 3, groups=3), nn.GELU(), cell="LSTM")


def test_state_dict_with_its_front_end_named(tmp_path):
    model = state_dict_model()
    torch.save(model.state_dict(), tmp_path / "model.pt")
    report = edgeseq.export(tmp_path / "model.pt", tmp_path / "crnn.onnx", batch_first=True,
                            front_end=STATE_DICT_FRONT, steps=STEPS)
    assert report.form == "state_dict" and report.architecture.delay == expected_delay(model) == 4
    assert_streams_like_pytorch(report.path, model)


def test_state_dict_of_a_causal_crnn_with_zeropad(tmp_path):
    model = crnn(nn.ZeroPad1d((4, 0)), nn.Conv1d(3, 5, 3, dilation=2), nn.Tanh())
    torch.save(model.state_dict(), tmp_path / "model.pt")
    report = edgeseq.export(tmp_path / "model.pt", tmp_path / "crnn.onnx", batch_first=True,
                            front_end="zeropad(before=4) conv(dilation=2) tanh", steps=STEPS)
    assert report.architecture.delay == expected_delay(model) == 0
    assert_streams_like_pytorch(report.path, model)


@pytest.mark.parametrize("front_end, message", [
    (None, "a state_dict does not record its convs' padding, dilation and groups, nor the activations between "
           "them; give them with --front-end"),
    ("conv batchnorm relu", "--front-end names conv batchnorm; the state_dict holds conv 'front.0' batchnorm "
                            "'front.1' conv 'front.4'"),
    ("conv(pad=1) batchnorm conv", "conv takes padding, dilation, groups; got 'pad=1'"),
    ("conv batchnorm softmax conv", "'softmax' is none of conv, batchnorm, dropout, zeropad, relu"),
    ("conv(padding=2,dilation=2) batchnorm conv(groups=3) ;", "cannot read ';'"),
])
def test_state_dict_front_end_mistakes(tmp_path, front_end, message):
    torch.save(state_dict_model().state_dict(), tmp_path / "model.pt")
    with pytest.raises(SourceError, match=message.replace("(", r"\(").replace(")", r"\)")):
        edgeseq.export(tmp_path / "model.pt", tmp_path / "crnn.onnx", batch_first=True, front_end=front_end)


def test_command_line_export_verify_inspect(tmp_path):
    from support.cli_results import assert_one_line_error, run

    model = state_dict_model()
    torch.save(model.state_dict(), tmp_path / "model.pt")
    out = tmp_path / "crnn.onnx"
    exported = run("export", tmp_path / "model.pt", "-o", out, "--batch-first", "--front-end", STATE_DICT_FRONT,
                   "--steps", 50)
    assert exported.exit_code == 0, exported.output
    assert "lags the full-sequence forward by 4 steps" in " ".join(exported.stdout.split())
    assert "FAIL" not in exported.stdout
    # verify reads the reference with the options recorded at export, --front-end among them
    verified = run("verify", out, "--reference", tmp_path / "model.pt", "--steps", 45)
    assert verified.exit_code == 0, verified.output
    assert "PyTorch vs edgeseq" in verified.stdout
    inspected = run("inspect", out)
    assert inspected.exit_code == 0 and "delay" in inspected.stdout and "4 steps" in inspected.stdout
    assert_one_line_error(run("verify", out, "--steps", 4), f"{out}: its stream lags the full-sequence forward by 4 "
                                                              f"steps; check it over more than 4 steps")
    assert "conv0_next" in inspected.stdout and "dilation 2" in inspected.stdout


def test_bench_times_pytorch_stepping_a_crnn_read_with_the_options_recorded_at_export(tmp_path):
    """bench --reference steps PyTorch with the conv caches fed back (one frame alone is too short
    for a conv of kernel 3 without padding), reading a state_dict as export read it."""
    from support.cli_results import run

    model = crnn(nn.Conv1d(3, 4, 3), nn.ReLU(), cell="GRU")
    torch.save(model.state_dict(), tmp_path / "model.pt")
    out = tmp_path / "crnn.onnx"
    exported = run("export", tmp_path / "model.pt", "-o", out, "--batch-first", "--front-end", "conv relu")
    assert exported.exit_code == 0, exported.output
    benched = run("bench", out, "--reference", tmp_path / "model.pt", "--json", "--calls", 100, "--no-cold-start")
    assert benched.exit_code == 0, benched.output
    assert json.loads(benched.stdout)["engines"]["PyTorch"]["step"]["median_us"] > 0


# -- int8 and fp16 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["int8", "fp16"])
def test_quantized_crnn_streams_in_edgeseq_as_in_onnx_runtime(tmp_path, mode):
    from edgeseq_export.api import verify
    from edgeseq_export.backends.quantize import quantize

    model = crnn(nn.Conv1d(3, 8, 3, padding=1), nn.BatchNorm1d(8), nn.ReLU(), nn.Conv1d(8, 8, 3, dilation=2),
                 nn.SiLU(), hidden=8)
    report = export(model, tmp_path)
    quantized = quantize(report.path, tmp_path / f"crnn-{mode}.onnx", mode)
    graph = onnx.load(quantized.output).graph
    producers = {output: node.op_type for node in graph.node for output in node.output}
    conv_weights = [producers.get(node.input[1]) for node in graph.node if node.op_type == "Conv"]
    assert conv_weights == (["DequantizeLinear"] * 2 if mode == "int8" else ["Cast"] * 2)
    checked = verify(quantized.output)  # ONNX Runtime against edgeseq, aligned by the delay
    assert checked.ok and any("lags" in note for note in checked.notes)
    x, delay = random_sequence(model, STEPS), expected_delay(model)
    y = edgeseq.load(quantized.output).run(x)[delay:]
    assert np.abs(y - full_sequence(model, x)[:STEPS - delay]).max() < (0.05 if mode == "int8" else 5e-3)


# -- padding modules ------------------------------------------------------------------------------------


def test_a_zero_pad_before_a_conv_is_its_padding_and_a_causal_conv_streams_without_delay(tmp_path):
    model = crnn(nn.ZeroPad1d((4, 0)), nn.Conv1d(3, 5, 3, dilation=2), nn.BatchNorm1d(5), nn.ReLU(),
                 nn.ConstantPad1d((1, 1), 0.0), nn.Conv1d(5, 5, 3, padding=1))
    report = export(model, tmp_path)
    assert [conv.padding for conv in report.architecture.convs] == [(4, 0), (2, 2)]
    assert report.architecture.delay == 0 and "warmup" not in {s.name for s in report.architecture.states}
    x = random_sequence(model, STEPS)
    np.testing.assert_allclose(edgeseq.load(report.path).run(x), full_sequence(model, x)[:STEPS], rtol=0,
                               atol=TOLERANCE)


@pytest.mark.parametrize("front, message", [
    ([nn.ReflectionPad1d(1), nn.Conv1d(3, 4, 3)], r"module 'front.0' \(ReflectionPad1d\) pads with frames of the "
                                                  r"sequence itself"),
    ([nn.ConstantPad1d((2, 0), 0.5), nn.Conv1d(3, 4, 3)], r"module 'front.0' \(ConstantPad1d\) pads with 0.5"),
    ([nn.Conv1d(3, 4, 3), nn.ZeroPad1d((2, 0)), nn.ReLU(), nn.Conv1d(4, 4, 3)],
     r"module 'front.1' pads the time axis, but what follows is not a Conv1d"),
], ids=["reflection", "non-zero value", "not before a conv"])
def test_padding_modules_a_stream_cannot_follow_are_refused(tmp_path, front, message):
    with pytest.raises(SourceError, match=message):
        export(crnn(*front), tmp_path)


def test_edgeseq_checkpoint_with_a_front_end(tmp_path):
    from edgeseq_export.pytorch.architecture import Activation, BatchNorm, Conv
    from edgeseq_export.pytorch.models import ModelConfig, SequenceModel, load_checkpoint, save_checkpoint

    torch.manual_seed(3)
    config = ModelConfig(cell="gru", input_size=3, hidden_size=8, task="classification", outputs=4,
                         front=(Conv(3, 6, 3, dilation=2, padding=2), BatchNorm(6), Activation("silu"),
                                Conv(6, 6, 3, padding=(2, 0))))
    model = SequenceModel(config).eval()
    with torch.no_grad():
        model.front[1].running_mean.uniform_(-1, 1)
        model.front[1].running_var.uniform_(0.5, 2)
    save_checkpoint(model, tmp_path / "model.pt")
    assert load_checkpoint(tmp_path / "model.pt").model.config == config
    report = edgeseq.export(tmp_path / "model.pt", tmp_path / "crnn.onnx", steps=STEPS)
    assert report.form == "edgeseq checkpoint" and report.architecture.delay == 2
    x = np.random.default_rng(1).standard_normal((STEPS, 3)).astype(np.float32)
    with torch.no_grad():
        expected = model.double()(torch.from_numpy(x.astype(np.float64))[None])[0][0].numpy()
    np.testing.assert_allclose(edgeseq.load(report.path).run(x)[2:], expected[:STEPS - 2], rtol=0, atol=TOLERANCE)


def test_lstm_with_a_projection_after_a_front_end(tmp_path):
    model = crnn(nn.Conv1d(3, 5, 3, padding=1), nn.ReLU(), cell="LSTM")
    model.rnn, model.head = nn.LSTM(5, 6, proj_size=4, batch_first=True), nn.Linear(4, 3)
    assert_streams_like_pytorch(export(model.eval(), tmp_path).path, model)


@pytest.mark.slow  # the dynamo exporter takes 5-10 s
def test_dynamo_exporter(tmp_path):
    model = crnn(nn.Conv1d(3, 5, 3, dilation=2, padding=2), nn.BatchNorm1d(5), nn.GELU(), nn.Conv1d(5, 5, 3),
                 cell="LSTM")
    report = export(model, tmp_path, exporter="dynamo")
    assert_streams_like_pytorch(report.path, model)


CONV = {"in_channels": 4, "out_channels": 4, "kernel_size": 3}


@pytest.mark.parametrize("front, message", [
    ([CONV | {"dilation": 10**9}], "more than the 4,194,304 floats a streamed conv may keep"),
    ([CONV, {"kind": "gelu", "settings": [["approximate", "cubic"]]}],
     "approximate 'cubic'; expected 'none' or 'tanh'"),
    ([CONV, {"kind": "elu", "settings": [["alpha", float("nan")]]}], "alpha nan is not a finite number"),
    (["relu"], "Conv, BatchNorm and Activation items only"),
], ids=["huge cache", "unknown approximation", "nan setting", "not a layer"])
def test_a_checkpoint_whose_front_end_cannot_be_built_is_refused_as_damaged(tmp_path, front, message):
    """A checkpoint loads without running code, but its config is the file's word: it is checked
    before any module or cache is made."""
    from edgeseq_export.pytorch.architecture import Activation, Conv
    from edgeseq_export.pytorch.models import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, ModelConfig, SequenceModel

    config = dict(cell="gru", input_size=4, hidden_size=4)
    weights = SequenceModel(ModelConfig(**config, front=(Conv(4, 4, 3), Activation("elu")))).state_dict()
    torch.save({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "config": {**config, "front": front},
                "state_dict": weights}, tmp_path / "model.pt")
    with pytest.raises(SourceError, match=re.escape(message)) as error:
        edgeseq.export(tmp_path / "model.pt", tmp_path / "crnn.onnx")
    assert "a damaged edgeseq checkpoint" in str(error.value)


# -- the generated C ------------------------------------------------------------------------------------


@pytest.mark.slow  # builds the host example and the C runtime: 4-8 s
@pytest.mark.parametrize("compiler", ["gcc", "clang_sanitized"])
def test_generated_c_streams_an_exported_crnn_like_pytorch(tmp_path, compiler):
    """PyTorch -> ONNX -> C99 (warnings as errors; clang with ASan/UBSan), stepped by the host
    example over the same rows: the runtime's numbers, and PyTorch's aligned by the delay."""
    import subprocess

    from support.codegen_builds import FIRMWARE, GCC, SANITIZED, make, parse_rows, require, rows_text

    host = {"gcc": GCC, "clang_sanitized": SANITIZED}[compiler]
    require("make", host.cc)
    model = crnn(nn.Conv1d(3, 6, 3, dilation=2, padding=2), nn.BatchNorm1d(6), nn.GELU(), nn.Conv1d(6, 6, 3, groups=2),
                 nn.Hardtanh(-1.0, 2.0), cell="LSTM")
    report = export(model, tmp_path)
    generated = subprocess.run(["edgeseq", "codegen", report.path, "-o", tmp_path / "c", "--name", "crnn"],
                               capture_output=True, text=True)
    assert generated.returncode == 0, generated.stderr
    make(FIRMWARE / "host", f"MODEL_DIR={tmp_path / 'c'}", "NAME=crnn", f"BUILD={tmp_path / 'build'}",
         f"CC={host.cc}", f"CFLAGS={host.cflags}")
    x = random_sequence(model, STEPS)
    ran = subprocess.run([tmp_path / "build" / "crnn" / "stream"], input=rows_text(x), capture_output=True,
                         text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    c_outputs = parse_rows(ran.stdout)
    np.testing.assert_allclose(c_outputs, edgeseq.load(report.path).run(x), rtol=0, atol=TOLERANCE)
    delay = expected_delay(model)
    np.testing.assert_allclose(c_outputs[delay:], full_sequence(model, x)[:STEPS - delay], rtol=0, atol=TOLERANCE)


def test_a_batch_norm_that_follows_no_conv_is_a_scale_and_shift(tmp_path):
    model = crnn(nn.BatchNorm1d(3), nn.Conv1d(3, 5, 3, padding=1), nn.ReLU(), nn.BatchNorm1d(5))
    report = export(model, tmp_path)
    assert_streams_like_pytorch(report.path, model)
    assert "BatchNormalization" not in {node.op_type for node in onnx.load(report.path).graph.node}
