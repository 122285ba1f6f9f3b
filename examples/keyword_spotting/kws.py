"""Keyword spotting on streamed log-mel frames, from synthetic speech to a Cortex-M4.

    python examples/keyword_spotting/kws.py [--size full|ci] [--out DIR] [--no-firmware]

makes the data (speech.py: espeak-ng + sox), computes its log-mel frames (logmel.py), trains a
causal Conv1d + GRU + Linear classifier, saves its state_dict as ``model.pt``, exports it with
``edgeseq export`` (which checks PyTorch, ONNX Runtime and edgeseq against each other) and
``edgeseq quantize`` (int8), streams every test clip frame by frame through
``edgeseq.load(...).step``, and builds and runs both models for the Cortex-M4 under QEMU
(firmware/), comparing each stage's per-clip decisions with the one before. It prints a
report and writes it to ``DIR/report.json``.

A decision is the class of the largest output after a clip's last frame (one second of
audio, 98 frames), the stream reset before each clip.
"""

from __future__ import annotations

import argparse
import copy
import json
import pathlib
import re
import struct
import subprocess
import sys
import time

import logmel
import numpy as np
import speech
import torch
from torch import nn

HERE = pathlib.Path(__file__).resolve().parent
FIRMWARE = HERE / "firmware"
SEED = 0
# The front end as `edgeseq export --front-end` needs it (a state_dict records no conv settings
# nor activations): KeywordSpotter.front, in order.
FRONT_END = "conv batchnorm relu conv(dilation=2) batchnorm relu"


class KeywordSpotter(nn.Module):
    """(batch, frames, BANDS) log-mel frames -> (batch, frames - 6, classes) scores.

    Two causal time convolutions (kernel 3, dilations 1 and 2: each output sees the 7 frames up
    to its own, so a stream lags the full-sequence forward by 6 frames), each with batch norm and
    ReLU, a GRU over their 32 channels, a linear head on each of its outputs.
    """

    def __init__(self, bands: int = logmel.BANDS, channels: int = 32, hidden: int = 48,
                 classes: int = len(speech.CLASSES)):
        super().__init__()
        self.front = nn.Sequential(nn.Conv1d(bands, channels, 3), nn.BatchNorm1d(channels), nn.ReLU(),
                                   nn.Conv1d(channels, channels, 3, dilation=2), nn.BatchNorm1d(channels), nn.ReLU())
        self.gru = nn.GRU(channels, hidden, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x):
        y, _ = self.gru(self.front(x.transpose(1, 2)).transpose(1, 2))
        return self.head(y)


def features(audio: np.ndarray) -> np.ndarray:
    """(clips, frames, BANDS) float32 log-mel frames of (clips, samples) audio."""
    return np.stack([logmel.log_mel(clip) for clip in audio])


def train(x: np.ndarray, labels: np.ndarray, epochs: int, seed: int = SEED) -> KeywordSpotter:
    """A KeywordSpotter fitted to score each clip's class after its last frame (Adam, cross-entropy)."""
    torch.manual_seed(seed)
    model = KeywordSpotter()
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=5e-3, total_steps=epochs * -(-len(x) // 32))
    x, labels = torch.from_numpy(x), torch.from_numpy(labels)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        for batch in torch.randperm(len(x), generator=generator).split(32):
            optimiser.zero_grad()
            loss = nn.functional.cross_entropy(model(x[batch])[:, -1], labels[batch])
            loss.backward()
            optimiser.step()
            schedule.step()
    return model.eval()


def pytorch_scores(model: KeywordSpotter, x: np.ndarray) -> np.ndarray:
    """The full-sequence forward of every clip in float64: (clips, frames - 6, classes)."""
    model64 = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        return model64(torch.from_numpy(x.astype(np.float64))).numpy()


def export(model_pt: pathlib.Path, onnx_path: pathlib.Path):
    """``edgeseq export MODEL.pt -o ONNX --batch-first --front-end FRONT_END``, from Python: checked
    (PyTorch, ONNX Runtime and edgeseq on the same random frames; it raises and writes nothing
    when they disagree)."""
    import edgeseq

    return edgeseq.export(model_pt, onnx_path, batch_first=True, front_end=FRONT_END)


def quantize(onnx_path: pathlib.Path, int8_path: pathlib.Path, calibration: pathlib.Path):
    """``edgeseq quantize ONNX -o INT8 --mode int8 --calibration FRAMES.npy``, from Python."""
    import edgeseq

    return edgeseq.quantize(onnx_path, int8_path, "int8", calibration=calibration)


def stream(onnx_path: pathlib.Path, x: np.ndarray) -> np.ndarray:
    """Every clip through edgeseq's runtime one frame a ``step``, reset in between: (clips, frames, classes)."""
    import edgeseq

    model = edgeseq.load(onnx_path)
    outputs = np.empty((*x.shape[:2], model.output_size), np.float32)
    for clip, frames in enumerate(x):
        model.reset()
        for t, frame in enumerate(frames):
            model.step(frame, out=outputs[clip, t])
    return outputs


def write_frames_header(x: np.ndarray, path: pathlib.Path) -> None:
    """The test clips' frames as a C array for the firmware (every float32 exact)."""
    from edgeseq_export.backends.cgen import c_array

    clips, frames, bands = x.shape
    path.write_text(
        "/* Generated by examples/keyword_spotting/kws.py: the test clips' log-mel frames. Do not edit. */\n"
        "#ifndef KWS_FRAMES_H\n#define KWS_FRAMES_H\n\n"
        f"#define KWS_CLIPS {clips}\n#define KWS_FRAMES {frames}\n#define KWS_BANDS {bands}\n\n"
        + c_array("float", "kws_frames", x, f"[clip][frame][band], {clips} x {frames} x {bands}")
        + "\n\n#endif /* KWS_FRAMES_H */\n")


def build_and_run(onnx_path: pathlib.Path, name: str, frames_dir: pathlib.Path, out: pathlib.Path) -> dict:
    """Generate C for the model, build the firmware and run it under QEMU: its scores, decisions and costs."""
    generated, build = out / "generated", out / f"build-{name}"
    from edgeseq_export.backends.codegen import (
        generate,  # what `edgeseq codegen ONNX -o DIR --name NAME` runs
    )

    generate(onnx_path, generated, name)
    make = ["make", "-s", "-C", FIRMWARE, f"MODEL_DIR={generated}", f"NAME={name}", f"FRAMES_DIR={frames_dir}",
            f"BUILD={build}"]
    printed = _run(*make, "run")
    sizes = _run(*make, "size")
    header = (generated / f"{name}.h").read_text()  # the model's own figures, as codegen states them
    model = {f"model_{kind}_bytes": int(re.search(rf"#define {name}_{kind.upper()}_BYTES (\d+)", header)[1])
             for kind in ("flash", "ram")}
    return {**parse_firmware_output(printed), **parse_sizes(sizes), **model}


def parse_firmware_output(text: str) -> dict:
    """What firmware/main.c prints: per clip its decision and last scores (float bits in hex), the
    SysTick ticks of every step and of a loop of known instruction count, and the stack peak."""
    clips = re.findall(r"^clip (\d+): class (\d+) scores ([0-9a-f ]+)$", text, re.MULTILINE)
    scores = np.array([[struct.unpack("<f", bytes.fromhex(word)[::-1])[0] for word in words.split()]
                       for _, _, words in clips], np.float32)
    steps = re.search(r"^steps (\d+) ticks (\d+)$", text, re.MULTILINE)
    calibration = re.search(r"^calibration (\d+) instructions ticks (\d+)$", text, re.MULTILINE)
    stack = re.search(r"^stack (\d+)$", text, re.MULTILINE)
    if not (clips and steps and calibration and stack):
        raise RuntimeError(f"unexpected firmware output:\n{text}")
    instructions_per_tick = int(calibration[1]) / int(calibration[2])
    return {"decisions": np.array([int(d) for _, d, _ in clips]), "scores": scores,
            "instructions_per_frame": int(steps[2]) * instructions_per_tick / int(steps[1]),
            "stack_bytes": int(stack[1])}


def parse_sizes(text: str) -> dict:
    """firmware/Makefile's `size`: flash without the embedded test frames (a device computes its
    own), and RAM (.data + .bss; the stack is measured at run time)."""
    image = re.search(r"flash (\d+) bytes, RAM (\d+) bytes", text)
    frames = re.search(r"test frames (\d+) bytes", text)
    if not (image and frames):
        raise RuntimeError(f"unexpected output of make size:\n{text}")
    return {"flash_bytes": int(image[1]) - int(frames[1]), "ram_bytes": int(image[2])}


def _run(*command) -> str:
    result = subprocess.run([str(part) for part in command], check=False, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, command))} failed ({result.returncode}):\n{result.stderr}{result.stdout}")
    return result.stdout


def accuracy(decisions: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(decisions == labels))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=("full", "ci"), default="full",
                        help="full: the figures of the README; ci: the same recipe on fewer voices and speeds")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("kws-out"), help="where to write everything")
    parser.add_argument("--epochs", type=int, help="training epochs [full: 30, ci: 12]")
    parser.add_argument("--no-firmware", dest="firmware", action="store_false",
                        help="stop after the Python stream (no arm-none-eabi-gcc or QEMU needed)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # a GRU of this size trains fastest on one thread (more contend)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    report: dict = {"size": args.size, "epochs": args.epochs or (30 if args.size == "full" else 12)}

    started = time.perf_counter()
    size = speech.FULL if args.size == "full" else speech.CI
    train_set = speech.make_split(size.train, part=0, seed=SEED)
    test_set = speech.make_split(size.test, part=1, seed=SEED + 1)
    x_train, x_test = features(train_set.audio), features(test_set.audio)
    report.update(train_clips=len(x_train), test_clips=len(x_test), data_seconds=time.perf_counter() - started)
    print(f"data: {len(x_train)} training and {len(x_test)} test clips of synthetic speech, "
          f"{x_test.shape[1]} frames x {x_test.shape[2]} bands ({report['data_seconds']:.1f} s)")

    started = time.perf_counter()
    model = train(x_train, train_set.labels, report["epochs"])
    report["train_seconds"] = time.perf_counter() - started
    reference = pytorch_scores(model, x_test)
    report["pytorch_accuracy"] = accuracy(reference[:, -1].argmax(1), test_set.labels)
    print(f"train: {report['epochs']} epochs in {report['train_seconds']:.1f} s; PyTorch test accuracy "
          f"{report['pytorch_accuracy']:.1%} (held-out voices and speeds)")

    models = {"fp32": out / "kws.onnx", "int8": out / "kws.int8.onnx"}
    torch.save(model.state_dict(), out / "model.pt")
    export(out / "model.pt", models["fp32"])
    np.save(out / "calibration.npy", x_train[::max(1, len(x_train) // 64)].reshape(-1, logmel.BANDS))
    quantize(models["fp32"], models["int8"], out / "calibration.npy")

    streamed = {precision: stream(path, x_test) for precision, path in models.items()}
    report.update(stream_report(streamed, reference, test_set.labels))
    if args.firmware:
        (out / "frames").mkdir(exist_ok=True)
        write_frames_header(x_test, out / "frames" / "kws_frames.h")
        for precision, path in models.items():
            device = build_and_run(path, f"kws_{precision}", out / "frames", out)
            report[f"qemu_{precision}"] = device_report(device, streamed[precision][:, -1], test_set.labels, precision)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def stream_report(streamed: dict, reference: np.ndarray, labels: np.ndarray) -> dict:
    """The stream against PyTorch's float64 forward (every frame, aligned by the delay) and against the labels."""
    delay = streamed["fp32"].shape[1] - reference.shape[1]
    decisions = {precision: outputs[:, -1].argmax(1) for precision, outputs in streamed.items()}
    error = np.abs(streamed["fp32"][:, delay:] - reference) / np.maximum(1.0, np.abs(reference))
    report = {"stream_vs_pytorch_error": float(error.max()),  # absolute below 1, relative above
              "stream_decisions_equal_pytorch": bool((decisions["fp32"] == reference[:, -1].argmax(1)).all()),
              **{f"stream_{precision}_accuracy": accuracy(d, labels) for precision, d in decisions.items()},
              "int8_decisions_equal_fp32": accuracy(decisions["int8"], decisions["fp32"]),
              "stream_fp32_accuracy_by_class": {name: accuracy(decisions["fp32"][labels == index], index)
                                                for index, name in enumerate(speech.CLASSES)}}
    print(f"stream: fp32 within {report['stream_vs_pytorch_error']:.1e} of PyTorch (every frame), "
          f"accuracy fp32 {report['stream_fp32_accuracy']:.1%}, int8 {report['stream_int8_accuracy']:.1%} "
          f"(int8 decides as fp32 on {report['int8_decisions_equal_fp32']:.1%} of the clips)")
    print("stream fp32 accuracy by class: " + ", ".join(
        f"{name} {value:.0%}" for name, value in report["stream_fp32_accuracy_by_class"].items()))
    return report


def device_report(device: dict, python: np.ndarray, labels: np.ndarray, precision: str) -> dict:
    """The firmware's decisions and last scores against the Python stream's (``python``), and its costs."""
    report = {"accuracy": accuracy(device["decisions"], labels),
              "decisions_equal_python": bool((device["decisions"] == python.argmax(1)).all()),
              "scores_error_vs_python": float((np.abs(device["scores"] - python) / np.maximum(1.0, np.abs(python))).max()),
              **{key: value for key, value in device.items() if key not in ("decisions", "scores")}}
    print(f"QEMU {precision}: accuracy {report['accuracy']:.1%}, decisions equal Python's: "
          f"{report['decisions_equal_python']}, scores within {report['scores_error_vs_python']:.1e}; "
          f"{report['instructions_per_frame']:,.0f} instructions/frame; flash {report['flash_bytes']:,} B "
          f"(without the test frames), RAM {report['ram_bytes']:,} B + stack {report['stack_bytes']:,} B")
    return report


if __name__ == "__main__":
    try:
        main()
    except (RuntimeError, subprocess.CalledProcessError, FileNotFoundError) as error:
        sys.exit(f"kws.py: {error}")
