"""``edgeseq export``, ``verify`` and ``inspect`` on the command line: output, exit codes, errors.

Success prints a rich table and exits 0; every failure exits 1 with exactly one line on
stderr, ``edgeseq: error: <file>: <reason>``, and no traceback.
"""

import json
import os
import subprocess
import sys

import onnx
import pytest
import torch
from edgeseq_export.onnx_model import verification
from edgeseq_export.pytorch import architecture
from support.cli_results import assert_one_line_error, run
from support.export_cases import HiddenActivation, UserSpec, build
from support.onnx_builders import build_model

from edgeseq.commands import options


@pytest.fixture
def state_dict(tmp_path):
    """A 2-layer LSTM with a two-Linear head (ReLU between them) saved as a plain state_dict."""
    model = build(UserSpec("LSTM", num_layers=2, batch_first=True, head=(6, "relu", 2)))
    torch.save(model.state_dict(), tmp_path / "model.pt")
    return model, tmp_path / "model.pt"


def test_export_then_verify_then_inspect(tmp_path, state_dict):
    model, source = state_dict
    out = tmp_path / "model.onnx"
    result = run("export", source, "-o", out, "--batch-first", "--activation", "relu", "--steps", "50")
    assert result.exit_code == 0, result.output
    for row in ("PyTorch vs ONNX Runtime", "PyTorch vs edgeseq", "ONNX Runtime vs edgeseq"):
        assert row in result.stdout
    assert "FAIL" not in result.stdout and f"wrote {out}" in result.stdout

    alone = run("verify", out)
    assert alone.exit_code == 0 and "ONNX Runtime vs edgeseq" in alone.stdout and "PyTorch" not in alone.stdout
    # The reference is read with the options recorded at export: no --batch-first, --activation.
    referenced = run("verify", out, "--reference", source, "--steps", "30")
    assert referenced.exit_code == 0, referenced.output
    assert "PyTorch vs edgeseq" in referenced.stdout

    inspected = run("inspect", out)
    assert inspected.exit_code == 0, inspected.output
    text = inspected.stdout
    assert f"{os.path.getsize(out):,} bytes" in text
    assert f"{sum(p.numel() for p in model.parameters()):,}" in text  # parameters, counted by PyTorch
    assert text.count(" LSTM ") >= 2 and "hidden 8" in text
    assert "h0_next" in text and "[2, 1, 8]" in text  # state layout of one stream
    assert "edgeseq.source_sha256" in text


@pytest.mark.parametrize("mode", ["fp32", "int8", "fp16"])
def test_inspect_counts_parameters_as_pytorch_does(tmp_path, state_dict, mode):
    """Weights stored as int8 or fp16 count as the parameters they decode to; scales do not."""
    from edgeseq_export.backends.quantize import quantize

    model, source = state_dict
    out = tmp_path / "model.onnx"
    assert run("export", source, "-o", out, "--batch-first", "--activation", "relu", "--no-verify").exit_code == 0
    if mode != "fp32":
        quantize(out, tmp_path / f"{mode}.onnx", mode=mode)
        out = tmp_path / f"{mode}.onnx"
    inspected = run("inspect", out)
    assert inspected.exit_code == 0, inspected.output
    parameters = next(line for line in inspected.stdout.splitlines() if "parameters" in line and "PyTorch" in line)
    assert f" {sum(p.numel() for p in model.parameters()):,} " in parameters


def test_verify_judges_an_int8_file_by_its_qdq_math(tmp_path, state_dict):
    """Stock ONNX Runtime quantizes activations too: shown, not judged; the QDQ math is judged."""
    from edgeseq_export.backends.quantize import quantize
    from edgeseq_export.onnx_model.verification import verify

    _, source = state_dict
    out = tmp_path / "model.onnx"
    assert run("export", source, "-o", out, "--batch-first", "--activation", "relu", "--no-verify").exit_code == 0
    quantize(out, tmp_path / "int8.onnx")
    report = verify(tmp_path / "int8.onnx")
    judged = {(d.first, d.second): d for d in report.differences if d.judged}
    stock = next(d for d in report.differences if not d.judged)
    assert set(judged) == {("ONNX Runtime", "edgeseq")} and judged["ONNX Runtime", "edgeseq"].worst <= 1e-5
    assert stock.first == "stock ONNX Runtime" and stock.worst > report.tolerance  # why it is not judged
    result = run("verify", tmp_path / "int8.onnx")
    assert result.exit_code == 0, result.output
    assert "not judged" in result.stdout and "activations" in result.stdout


def test_inspect_prints_then_fails_on_a_model_the_runtime_cannot_stream(tmp_path):
    built = build_model(tmp_path, "LSTM", direction="bidirectional")
    result = run("inspect", built.path)
    assert "layers" in result.stdout and "hidden 8" in result.stdout
    assert_one_line_error(result, str(built.path), "bidirectional")
    (tmp_path / "empty.onnx").write_bytes(b"")
    empty = run("inspect", tmp_path / "empty.onnx")
    assert_one_line_error(empty, "empty.onnx", "no nodes")
    assert "parameters" not in empty.stdout


def test_no_verify_skips_the_check(tmp_path, state_dict):
    _, source = state_dict
    result = run("export", source, "-o", tmp_path / "model.onnx", "--activation", "relu", "--batch-first",
                 "--no-verify")
    assert result.exit_code == 0 and "not verified" in result.stdout and "vs" not in result.stdout


def test_disagreement_prints_the_table_and_exits_1_without_writing(tmp_path):
    torch.save(HiddenActivation(UserSpec("GRU")).eval(), tmp_path / "model.pt")
    result = run("export", tmp_path / "model.pt", "-o", tmp_path / "model.onnx", "--trust-pickle")
    assert "FAIL" in result.stdout and "own forward" in result.stdout
    assert_one_line_error(result, f"{tmp_path / 'model.onnx'}: PyTorch and", "tolerance 0.0001")
    assert not (tmp_path / "model.onnx").exists()


def test_refusals_are_one_line(tmp_path, state_dict):
    _, source = state_dict
    out = tmp_path / "model.onnx"
    assert_one_line_error(run("export", source, "-o", out, "--batch-first"), str(source), "--activation")
    torch.save(build(UserSpec()), tmp_path / "pickled.pt")
    assert_one_line_error(run("export", tmp_path / "pickled.pt", "-o", out), "pickled.pt",
                          "loading a pickle runs code", "--trust-pickle")
    torch.save({"lstm.weight_ih_l0_reverse": torch.zeros(32, 4)}, tmp_path / "bi.pt")
    assert_one_line_error(run("export", tmp_path / "bi.pt", "-o", out), "bi.pt", "bidirectional")
    (tmp_path / "cut.pt").write_bytes(source.read_bytes()[:200])
    assert_one_line_error(run("export", tmp_path / "cut.pt", "-o", out), "cut.pt", "damaged")
    assert_one_line_error(run("export", tmp_path / "absent.pt", "-o", out), "absent.pt", "No such file")
    assert_one_line_error(run("inspect", source), str(source), "not a readable ONNX model")
    plain = tmp_path / "plain.onnx"
    onnx.save(onnx.helper.make_model(onnx.helper.make_graph([], "empty", [], [])), plain)
    assert_one_line_error(run("verify", plain), "plain.onnx", "no edgeseq metadata")
    assert not out.exists()


def test_exit_status_and_stderr_of_a_real_process(tmp_path):
    (tmp_path / "model.pt").write_bytes(b"not a model")
    result = subprocess.run([sys.executable, "-m", "edgeseq.cli", "export", str(tmp_path / "model.pt"),
                             "-o", str(tmp_path / "model.onnx")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith(f"edgeseq: error: {tmp_path / 'model.pt'}: ")
    assert result.stderr.count("\n") == 1


def test_cli_choices_and_defaults_match_the_toolchain():
    assert options.NONLINEARITIES == architecture.NONLINEARITIES
    assert options.ACTIVATIONS == architecture.ACTIVATIONS
    assert (options.DEFAULT_STEPS, options.DEFAULT_TOLERANCE) == (verification.DEFAULT_STEPS,
                                                                  verification.DEFAULT_TOLERANCE)


def test_bench_json_has_every_engine_figure_and_the_ratios(tmp_path):
    built = build_model(tmp_path, "GRU", head="matmul")
    result = run("bench", built.path, "--json", "--calls", 200, "--no-cold-start")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    ours, theirs = report["engines"]["edgeseq"], report["engines"]["ONNX Runtime"]
    for figures in (ours, theirs):
        assert 0 < figures["step"]["median_us"] <= figures["step"]["p99_us"]
        assert figures["run_steps_per_s"] > 0
    assert ours["memory_bytes"] > 0
    ratios = report["ratios"]["ONNX Runtime"]
    assert ratios["step"] == pytest.approx(theirs["step"]["median_us"] / ours["step"]["median_us"])
    assert ratios["run"] == pytest.approx(ours["run_steps_per_s"] / theirs["run_steps_per_s"])
