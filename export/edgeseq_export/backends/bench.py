"""Measuring a streaming model: per-step latency, whole-sequence throughput, cold start and
memory, for edgeseq's runtime and, side by side in the same run, ONNX Runtime.

Every engine runs on one thread with the same inputs; latencies are medians (and 99th
percentiles) over many single calls after a warm-up, the engines taking turns so that a slow
spell of a shared machine hits them all alike.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import onnx
import onnxruntime as ort
from edgeseq_runtime import LoadOptions, StreamingModel, load, lower_model
from edgeseq_runtime.errors import first_line

from ..errors import SourceError
from ..onnx_model.verification import onnxruntime_constants, onnxruntime_session_options

RUN_REPEATS = 3  # whole-sequence runs per engine; the fastest counts (a shared machine only slows)


@dataclass
class Latency:
    median_us: float
    p99_us: float


@dataclass
class EngineFigures:
    step: Latency | None = None
    run_steps_per_s: float | None = None
    cold_start_s: dict[str, float] = field(default_factory=dict)   # "warm cache" / "cold cache"
    memory_bytes: int | None = None
    note: str = ""


@dataclass
class BenchReport:
    model: str
    batch: int
    engines: dict[str, EngineFigures]

    def ratio(self, slower: str, figure: str) -> float | None:
        """How many times ``slower`` takes edgeseq's time (> 1: edgeseq is faster)."""
        ours, theirs = self.engines["edgeseq"], self.engines.get(slower)
        if theirs is None:
            return None
        if figure == "step" and ours.step and theirs.step:
            return theirs.step.median_us / ours.step.median_us
        if figure == "run" and ours.run_steps_per_s and theirs.run_steps_per_s:
            return ours.run_steps_per_s / theirs.run_steps_per_s
        return None

    def to_dict(self) -> dict:
        """The figures, and for each other engine how many times edgeseq's speed it is
        (``ratios``: step from its latency, run from its throughput; > 1: edgeseq is faster)."""
        ratios = {name: {figure: self.ratio(name, figure) for figure in ("step", "run")}
                  for name in self.engines if name != "edgeseq"}
        return {**asdict(self), "ratios": ratios}


class OnnxRuntimeStepper:
    """Streams any model edgeseq can stream with ONNX Runtime instead: one ``session.run`` per
    step, each state output fed back as its state input (ONNX Runtime keeps no state), the
    load options' constants fed as given and their context kept here (the input's batch axis first)."""

    def __init__(self, path, batch: int = 1, load_options: LoadOptions | None = None):
        path = os.fspath(path)
        load_options = load_options or LoadOptions()
        lowered = lower_model(path, batch, load_options)
        graph = onnx.load(path, load_external_data=False).graph
        inputs = [i.name for i in graph.input]
        carried = [s for s in lowered.states if not (lowered.context and s.name == f"{lowered.input_name}.context")]
        state_inputs = [s.name for s in carried if s.name in inputs]
        if len(state_inputs) != len(carried):
            raise SourceError(f"{path}: part of the recurrent state is not a graph input, so ONNX Runtime "
                              f"cannot carry it from one call to the next")
        paired = lowered.state_outputs
        unpaired = iter(o.name for o in graph.output if o.name != lowered.output_name and o.name not in paired.values())
        state_outputs = [paired.get(name) or next(unpaired, None) for name in state_inputs]
        if None in state_outputs:
            raise SourceError(f"{path}: the graph does not output the next state for every state input")
        options = onnxruntime_session_options()
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.input_name, self.input_shape = lowered.input_name, lowered.input_shape
        self.time_axis = lowered.input_time_axis
        self.input_dtype = np.int64 if lowered.vocab else np.float32
        self.pairs = list(zip(state_inputs, state_outputs))
        self.wanted = [lowered.output_name, *(out for _, out in self.pairs)]
        self.initial = {s.name: lowered.plan.arena[s.offset:s.offset + s.size].reshape(s.shape).copy()
                        for s in carried}
        self.initial.update(onnxruntime_constants(self.session, load_options.constants))
        self.context, self.batch = lowered.context, batch
        self.reset()

    def reset(self) -> None:
        self.feeds = {name: value.copy() for name, value in self.initial.items()}
        self.kept = np.zeros((self.batch, self.context), self.input_dtype)

    def step(self, x) -> np.ndarray:
        x = np.asarray(x, self.input_dtype)
        if self.context:
            x = np.concatenate([self.kept, x.reshape(self.batch, -1)], axis=1)
            self.kept = x[:, x.shape[1] - self.context:]
        self.feeds[self.input_name] = x.reshape(self.input_shape)
        y, *states = self.session.run(self.wanted, self.feeds)
        for (name, _), value in zip(self.pairs, states):
            self.feeds[name] = value
        return y


def torch_stepper(network, batch: int = 1):
    """One step of a ``RecurrentNetwork`` in PyTorch eager, state fed back: how a PyTorch user
    would stream it (call under ``torch.inference_mode()`` on one thread). It steps the module
    the step graph is written from (``StepModule``), so a conv front end keeps its caches as
    state instead of convolving one frame alone."""
    import torch

    from ..onnx_model.step_graph import StepModule

    module, state = StepModule(network), network.initial_state(batch)
    time_axis = 1 if network.architecture.batch_first else 0

    def step(x):
        nonlocal state
        tensor = torch.from_numpy(np.asarray(x)).reshape(batch, -1) if not network.architecture.vocab_size \
            else torch.from_numpy(np.asarray(x, np.int64)).reshape(batch)
        y, *state = module(tensor.unsqueeze(time_axis), *state)
        return y

    return step


def step_latencies(steppers: dict, x, calls: int = 5000, warmup: int = 500, run_length: int = 100) -> dict[str, Latency]:
    """{name: Latency} of ``stepper(x)`` for each: every call timed alone, in runs of
    ``run_length`` consecutive calls of one engine (as a stream calls it, caches warm), the
    engines taking turns run by run so that a slow spell of the machine hits them all."""
    samples = {name: [] for name in steppers}
    for step in steppers.values():
        for _ in range(warmup):
            step(x)
    clock = time.perf_counter_ns
    for _ in range(max(1, calls // run_length)):
        for name, step in steppers.items():
            times = samples[name]
            for _ in range(run_length):
                start = clock()
                step(x)
                times.append(clock() - start)
    return {name: Latency(float(np.median(s)) / 1e3, float(np.percentile(s, 99)) / 1e3)
            for name, s in samples.items()}


def sample_input(stream: StreamingModel, steps: int, seed: int = 0) -> np.ndarray:
    """(steps, ...) inputs the model takes: standard normal floats, or token ids."""
    rng = np.random.default_rng(seed)
    shape = (steps, *(() if stream.batch == 1 else (stream.batch,)))
    if stream.is_token_model:
        return rng.integers(0, stream.vocab_size, shape)
    return rng.standard_normal((*shape, stream.input_size)).astype(np.float32)


def cold_start_seconds(path, cold_cache: bool, load_options: LoadOptions | None = None) -> float:
    """A fresh Python process, from its start to the first output of ``load(path).step`` (the
    process reports it on stdout; its exit afterwards is not counted). With ``cold_cache``
    numba's on-disk cache points at an empty folder, so everything compiles."""
    script = ("import json, numpy as np, sys, edgeseq_runtime as e; m = e.load(sys.argv[1], **json.loads(sys.argv[2])); "
              "m.step(np.zeros((), np.int64) if m.is_token_model else np.zeros(m.input_size, np.float32)); "
              "print('first output', flush=True)")
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as cache:
        if cold_cache:
            env["NUMBA_CACHE_DIR"] = cache
        start = time.perf_counter()
        with subprocess.Popen([sys.executable, "-c", script, os.fspath(path),
                               json.dumps((load_options or LoadOptions()).fields())], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
            line = process.stdout.readline()
            seconds = time.perf_counter() - start
            _, errors = process.communicate()
        if process.returncode or line.strip() != "first output":
            raise RuntimeError(f"the cold-start process failed: {first_line(errors)}")
        return seconds


def measure(path, batch: int = 1, calls: int = 5000, run_steps: int = 10_000,
            cold_start: bool = True, reference=None, load_options: LoadOptions | None = None) -> BenchReport:
    """Every figure of ``edgeseq bench`` for the model at ``path`` loaded with ``load_options``;
    with ``reference`` (a ``sources.Source`` read from MODEL.pt), PyTorch eager's step latency too."""
    path = os.fspath(path)
    load_options = load_options or LoadOptions()
    stream = load(path, batch=batch, **load_options.fields())
    xs = sample_input(stream, run_steps)
    x = xs[0]
    ours = EngineFigures(memory_bytes=stream.nbytes)
    engines = {"edgeseq": ours}
    steppers = {"edgeseq": stream.step}
    try:
        theirs = OnnxRuntimeStepper(path, batch, load_options)
        engines["ONNX Runtime"] = EngineFigures()
        steppers["ONNX Runtime"] = theirs.step
    except SourceError as e:
        engines["ONNX Runtime"] = EngineFigures(note=str(e))
        theirs = None
    if reference is not None:
        engines["PyTorch"] = EngineFigures()
        steppers["PyTorch"] = torch_stepper(reference.network, batch)
    with _one_torch_thread():
        for name, latency in step_latencies(steppers, x, calls).items():
            engines[name].step = latency
    stream.reset()
    stream.run(xs[:100])
    ours.run_steps_per_s = max(run_steps / seconds_of(stream.run, xs) for _ in range(RUN_REPEATS))
    if theirs is not None:
        rates = [onnxruntime_sequence_rate(theirs, xs) for _ in range(RUN_REPEATS)]
        engines["ONNX Runtime"].run_steps_per_s = None if None in rates else max(rates)
    if cold_start:
        ours.cold_start_s = {"warm cache": min(cold_start_seconds(path, False, load_options) for _ in range(2)),
                             "cold cache": cold_start_seconds(path, True, load_options)}
    return BenchReport(path, batch, engines)


def seconds_of(function, *arguments) -> float:
    """Wall-clock seconds of one call."""
    start = time.perf_counter()
    function(*arguments)
    return time.perf_counter() - start


class _one_torch_thread:
    """PyTorch on one thread while measuring (every engine gets one), if it is installed."""

    def __enter__(self):
        self.torch = sys.modules.get("torch")
        if self.torch is not None:
            self.threads = self.torch.get_num_threads()
            self.torch.set_num_threads(1)
            self.mode = self.torch.inference_mode()
            self.mode.__enter__()

    def __exit__(self, *exc):
        if self.torch is not None:
            self.mode.__exit__(*exc)
            self.torch.set_num_threads(self.threads)


def onnxruntime_sequence_rate(stepper: OnnxRuntimeStepper, xs) -> float | None:
    """Steps per second of ONNX Runtime running the whole sequence in one call (its native
    LSTM/GRU loop), when the graph's time axis is dynamic; else None."""
    axis = stepper.time_axis
    declared = next(i.shape for i in stepper.session.get_inputs() if i.name == stepper.input_name)
    if axis is None or isinstance(declared[axis], int):
        return None
    one_step = [d for i, d in enumerate(stepper.input_shape) if i != axis]
    x = np.moveaxis(xs.reshape(len(xs), *one_step), 0, axis)
    feeds = {**stepper.initial, stepper.input_name: np.ascontiguousarray(x, stepper.input_dtype)}
    stepper.session.run(stepper.wanted[:1], feeds)
    start = time.perf_counter()
    stepper.session.run(stepper.wanted[:1], feeds)
    return len(xs) / (time.perf_counter() - start)
