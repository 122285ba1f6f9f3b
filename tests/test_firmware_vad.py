"""firmware_examples/vad: Silero VAD v6, quantized to int8 and generated as C by its Makefile, run
under QEMU's mps2-an386 (Cortex-M4F) and as a host program over the recording the Makefile speaks.

Each 32 ms chunk's probability is compared with the Python runtime on the same int8 file with the
same load options (<= 1e-4), and the speech segments with those that silero-vad's own
get_speech_timestamps_from_probs (from the silero-vad wheel) finds in the runtime's probabilities
(identical). The goals of the int8 VAD: flash <= its int8 weights + 24 KB, RAM <= 16 KB (static and
the measured stack peak).
"""

from __future__ import annotations

import re
import sys
import types
import wave
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from support import audio, silero_files
from support.codegen_builds import FIRMWARE, make, require

pytestmark = pytest.mark.slow  # quantizes and generates Silero, cross-compiles it, runs QEMU

VAD = FIRMWARE / "vad"
CHUNK = 512
TOLERANCE = 1e-4
FLASH_OVER_INT8_WEIGHTS = 24 * 1024  # the goals of the int8 VAD
RAM_GOAL = 16 * 1024
MAX_STACK_BYTES = 4096
# get_speech_timestamps' rules as the firmware applies them
RULES = {"threshold": 0.5, "neg_threshold": 0.35, "min_silence_duration_ms": 100, "min_speech_duration_ms": 250,
         "speech_pad_ms": 30}
OUTPUTS = {"qemu": "run", "host": "run-host", "size": "size"}  # what each make target printed


@pytest.fixture(scope="module")
def firmware(builds):
    """The Makefile's build folder after `make run`, `make run-host` and `make size`, and what
    they printed: made once per test run, shared by the pytest-xdist workers."""
    require("make", "cc", "arm-none-eabi-gcc", "qemu-system-arm", "timeout")
    if missing := audio.tools_missing():
        pytest.skip(f"{' and '.join(missing)} not installed (apt-get install espeak-ng sox)")
    try:
        silero = silero_files.silero_file("silero_vad_v6")
    except silero_files.Unavailable as e:
        pytest.skip(f"the Silero files cannot be had here: {e}")
    build = builds.root / "vad"
    options = [f"BUILD={build}", f"SILERO={silero}", f"EDGESEQ={Path(sys.executable).parent / 'edgeseq'}",
               f"PYTHON={sys.executable}"]

    def run():
        for name, target in OUTPUTS.items():
            (build / f"{name}.out").write_text(make(VAD, *options, target=target, timeout=600))

    builds.once("vad-firmware", run)
    return types.SimpleNamespace(build=build, **{name: (build / f"{name}.out").read_text() for name in OUTPUTS})


def chunk_lines(output: str) -> list[tuple[int, int, float, list[str]]]:
    return [(int(i), int(ms), float(p), rest.split())
            for i, ms, p, rest in re.findall(r"^chunk (\d+) (\d+) ([0-9.]+)(.*)$", output, re.MULTILINE)]


def segments(output: str) -> list[tuple[int, int, int, int]]:
    return [tuple(map(int, found)) for found in re.findall(r"^speech (\d+) (\d+) (\d+) (\d+)$", output, re.MULTILINE)]


def recording(build: Path) -> np.ndarray:
    with wave.open(str(build / "speech.wav"), "rb") as wav:
        return np.frombuffer(wav.readframes(wav.getnframes()), "<i2") / np.float32(32768)


def runtime_probabilities(build: Path, samples: np.ndarray) -> np.ndarray:
    """The Python runtime on the firmware's int8 file and load options, the last chunk padded with
    zeros as get_speech_timestamps pads it."""
    import edgeseq_runtime

    chunks = np.zeros(-(-len(samples) // CHUNK) * CHUNK, np.float32)
    chunks[:len(samples)] = samples
    model = edgeseq_runtime.load(build / "silero_vad_v6_int8.onnx", context=64)
    return model.run(chunks.reshape(-1, CHUNK))[:, 0]


def silero_segments(probabilities: np.ndarray, length: int) -> list[tuple[int, int]]:
    """silero-vad 6.2.3's get_speech_timestamps_from_probs, read from its wheel (not installed:
    its dependencies pull another torch)."""
    wheel = silero_files.CACHE / "silero" / "silero_vad-6.2.3-py3-none-any.whl"
    module = types.ModuleType("silero_utils_vad")
    source = zipfile.ZipFile(wheel).read("silero_vad/utils_vad.py")
    exec(compile(source, "silero_vad/utils_vad.py", "exec"), module.__dict__)  # noqa: S102 (pinned by digest)
    found = module.get_speech_timestamps_from_probs([float(p) for p in probabilities], sampling_rate=16000,
                                                    audio_length_samples=length, **RULES)
    return [(s["start"], s["end"]) for s in found]


@pytest.mark.parametrize("program", ["qemu", "host"])
def test_vad_probabilities_and_segments_match_the_runtime_and_silero(firmware, program):
    samples = recording(firmware.build)
    expected = runtime_probabilities(firmware.build, samples)
    chunks = chunk_lines(getattr(firmware, program))
    assert [(i, ms) for i, ms, _, _ in chunks] == [(i, i * 32) for i in range(len(expected))]
    got = np.array([p for _, _, p, _ in chunks])
    assert np.abs(got - expected).max() <= TOLERANCE
    want = silero_segments(expected, len(samples))
    assert [(start, end) for _, _, start, end in segments(getattr(firmware, program))] == want
    assert [(start_ms, end_ms) for start_ms, end_ms, _, _ in segments(getattr(firmware, program))] == \
        [(start // 16, end // 16) for start, end in want]


def test_vad_finds_each_spoken_sentence(firmware, tmp_path):
    """The Makefile's recording is the tests' speech recording; one segment on each sentence."""
    spoken = audio.speech_recording(tmp_path)
    assert np.array_equal(recording(firmware.build), spoken.samples)
    found = segments(firmware.qemu)
    assert len(found) == len(spoken.speech)
    for (_, _, start, end), (first, last) in zip(found, spoken.speech):
        overlap = min(end, last) - max(start, first)
        assert overlap > 0.8 * (last - first)


def test_vad_on_the_cortex_m4_counts_its_instructions_and_stack(firmware):
    counts = {int(rest[0]) for _, _, _, rest in chunk_lines(firmware.qemu)}
    assert len(counts) >= 1 and min(counts) > 100_000  # SysTick under -icount: 40 instructions a tick
    stack = int(re.search(r"^stack (\d+)$", firmware.qemu, re.MULTILINE).group(1))
    assert 0 < stack <= MAX_STACK_BYTES
    assert "stack" not in firmware.host and all(not rest for *_, rest in chunk_lines(firmware.host))


def test_vad_size_reports_flash_and_ram(firmware):
    flash, ram, recording_bytes = map(int, re.search(r"flash (\d+) bytes, RAM (\d+) bytes.*adds (\d+) bytes",
                                                     firmware.size).groups())
    arena = int(re.search(r"#define vad_RAM_BYTES (\d+)", (firmware.build / "generated" / "vad.h").read_text()).group(1))
    assert ram >= arena and flash > int8_weight_bytes(firmware.build) and recording_bytes > 600_000


def int8_weight_bytes(build: Path) -> int:
    model = onnx.load(build / "silero_vad_v6_int8.onnx")
    return sum(numpy_helper.to_array(t).nbytes for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8)


def test_vad_flash_is_within_the_int8_weights_and_24_kb(firmware):
    flash = int(re.search(r"flash (\d+) bytes", firmware.size).group(1))
    assert flash <= int8_weight_bytes(firmware.build) + FLASH_OVER_INT8_WEIGHTS


def test_vad_ram_is_within_16_kb(firmware):
    ram = int(re.search(r"RAM (\d+) bytes", firmware.size).group(1))
    stack = int(re.search(r"^stack (\d+)$", firmware.qemu, re.MULTILINE).group(1))
    assert ram + stack <= RAM_GOAL
