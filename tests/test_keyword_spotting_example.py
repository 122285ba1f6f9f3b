"""examples/keyword_spotting: its log-mel recipe, its model's export, and the whole example run.

The recipe is checked against scipy's STFT and a mel filterbank written out from the recipe's
definition in float64 loops; the model's export against PyTorch's float64 forward; the run (the
CI configuration of kws.py: the same recipe on fewer voices) checks that every stage makes the
decisions of the one before: PyTorch, edgeseq's stream, and the generated C under QEMU.
"""

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.signal
import torch

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "keyword_spotting"
sys.path.insert(0, str(EXAMPLE))  # the example's modules import each other as a script does

import kws
import logmel

TOLERANCE = 1e-5


def reference_filterbank() -> np.ndarray:
    """The recipe's 40 triangles, bin by bin, from its words: HTK mel, 42 edges from 20 to 8000 Hz."""
    mel = lambda hz: 2595.0 * math.log10(1.0 + hz / 700.0)
    hz = lambda m: 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    edges = [hz(mel(20.0) + i * (mel(8000.0) - mel(20.0)) / 41) for i in range(42)]
    bank = np.zeros((40, 257))
    for band in range(40):
        low, centre, high = edges[band:band + 3]
        for k in range(257):
            f = k * 16000 / 512
            if low < f <= centre:
                bank[band, k] = (f - low) / (centre - low)
            elif centre < f < high:
                bank[band, k] = (high - f) / (high - centre)
    return bank


def reference_log_mel(samples: np.ndarray) -> np.ndarray:
    """scipy's STFT (periodic Hann of 400, hop 160, 512-point FFT, no padding), power, bands, log."""
    window = scipy.signal.get_window("hann", 400)  # periodic: scipy's default for spectral analysis
    _, _, spectrum = scipy.signal.stft(samples.astype(np.float64), window=window, nperseg=400, noverlap=240,
                                       nfft=512, boundary=None, padded=False, scaling="spectrum")
    power = np.abs(spectrum * window.sum()) ** 2  # scaling="spectrum" divides by the window's sum
    return np.log(reference_filterbank() @ power + 1e-6).T


def test_log_mel_frames_match_scipy_and_the_written_out_filterbank():
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    samples = (0.3 * np.sin(2 * np.pi * (200 + 3000 * t) * t) + 0.05 * rng.standard_normal(16000)).astype(np.float32)
    samples[4000:6000] = 0.0  # digital silence: the floor keeps the log finite
    frames = logmel.log_mel(samples)
    assert frames.shape == (98, 40) and frames.dtype == np.float32
    np.testing.assert_allclose(logmel.mel_filterbank(), reference_filterbank(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(frames, reference_log_mel(samples), rtol=TOLERANCE, atol=TOLERANCE)


def test_a_tone_burst_lands_in_its_frames_and_band():
    samples = np.zeros(16000)
    samples[8000:8400] = np.sin(2 * np.pi * 1000 * np.arange(400) / 16000)  # exactly frame 50's samples
    frames = logmel.log_mel(samples)
    centres = [700 * (10 ** (m / 2595) - 1) for m in np.linspace(logmel.hz_to_mel(20), logmel.hz_to_mel(8000), 42)[1:-1]]
    assert np.unravel_index(frames.argmax(), frames.shape) == (50, int(np.argmin(np.abs(np.array(centres) - 1000))))
    assert frames[:48].max() == frames[53:].max() == pytest.approx(math.log(1e-6))  # frames 48-52 overlap it


def test_the_keyword_spotter_exports_and_streams_like_pytorch(tmp_path):
    torch.manual_seed(0)
    model = kws.KeywordSpotter(channels=4, hidden=5)
    with torch.no_grad():
        for norm in (model.front[1], model.front[4]):  # statistics far from the identity: folding is tested
            norm.running_mean.uniform_(-1, 1)
            norm.running_var.uniform_(0.3, 3)
    torch.save(model.eval().state_dict(), tmp_path / "model.pt")
    kws.export(tmp_path / "model.pt", tmp_path / "kws.onnx")
    x = np.random.default_rng(1).normal(-5, 3, (2, 30, 40)).astype(np.float32)  # log-mel-like levels
    streamed = kws.stream(tmp_path / "kws.onnx", x)
    reference = kws.pytorch_scores(model, x)
    assert reference.shape == (2, 24, 8)
    np.testing.assert_allclose(streamed[:, 6:], reference, rtol=0, atol=TOLERANCE)  # 6 frames of delay
    assert not streamed[:, :6].any()


def test_the_firmware_output_is_read_back_exactly():
    text = ("clip 0: class 1 scores 3f800000 c0490fdb\nclip 1: class 0 scores 00000000 ff800000\n"
            "calibration 200000 instructions ticks 5000\nsteps 196 ticks 9800\nstack 412\n")
    read = kws.parse_firmware_output(text)
    np.testing.assert_array_equal(read["decisions"], [1, 0])
    np.testing.assert_array_equal(read["scores"], np.array([[1.0, -np.pi], [0.0, -np.inf]], np.float32))
    assert read["instructions_per_frame"] == 9800 * 40 / 196 and read["stack_bytes"] == 412


TOOLS = ("espeak-ng", "sox", "make", "arm-none-eabi-gcc", "qemu-system-arm")


@pytest.mark.slow
def test_the_ci_configuration_decides_alike_in_pytorch_the_stream_and_qemu(tmp_path):
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (apt-get install espeak-ng sox make gcc-arm-none-eabi "
                    f"libnewlib-arm-none-eabi qemu-system-arm)")
    subprocess.run([sys.executable, EXAMPLE / "kws.py", "--size", "ci", "--out", tmp_path], check=True,
                   capture_output=True, timeout=600)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["stream_vs_pytorch_error"] <= TOLERANCE and report["stream_decisions_equal_pytorch"]
    assert report["stream_fp32_accuracy"] == report["pytorch_accuracy"] > 1 / 8  # above chance
    for precision in ("fp32", "int8"):
        device = report[f"qemu_{precision}"]
        assert device["decisions_equal_python"], precision
        assert device["accuracy"] == report[f"stream_{precision}_accuracy"]
        assert device["scores_error_vs_python"] <= TOLERANCE, precision
        assert 0 < device["instructions_per_frame"] and 0 < device["stack_bytes"] < 16384
        assert device["flash_bytes"] > device["model_flash_bytes"] and device["ram_bytes"] >= device["model_ram_bytes"]
    assert (tmp_path / "model.pt").exists() and (tmp_path / "kws.int8.onnx").exists()
