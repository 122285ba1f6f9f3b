"""A recurrent gate takes its biases after its last term, as ONNX Runtime does (and as the Conv and
Gemm do): small terms next to biases of 20 to 50 keep their low bits, in the Python runtime
(``step`` and ``run``, one stream and three) and in the generated C.

Each case looks at one gate: its weights random (X under 1e-3, Ht-1 against small R), its Wb and
Rb of 10 to 25 each, one sign; the activations the identity (Affine 1, 0); the other gates held at
exactly 0 or 1 by zero weights and biases of 0 or 1. The layer's output is then the gate itself,
or 1 + gate * S for the gates that only scale a state (GRU's z, LSTM's f). Every step is checked
against the ONNX equations in float64, given the state edgeseq had, within float32's bound for
the terms summed in any order and then the biases joined in at most three roundings (Wb + Rb,
the two products, the bias added) and the output's own. Carried from the bias, each term was
rounded to the bias's precision: 1.4 to 4.5 times that bound."""

from __future__ import annotations

from typing import NamedTuple

import edgeseq_runtime
import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper
from support.codegen_builds import GCC, StepCases

GATES = {"RNN": "i", "GRU": "zrh", "LSTM": "iofc"}  # ONNX's order of each cell's gates
N_IN, N_H, STEPS = 129, 19, 4
U = 2.0 ** -24


class Probe(NamedTuple):
    op: str
    gate: str  # the gate looked at
    held: dict  # the other gates' (Wb, Rb): zero weights, so exactly these values
    linear_before_reset: int = 0

    @property
    def scaling(self) -> bool:
        """Whether the output is 1 + gate * S (the gate scales a state) rather than the gate."""
        return (self.op, self.gate) in (("GRU", "z"), ("LSTM", "f"))

    @property
    def name(self) -> str:
        return f"{self.op} {self.gate}" + (" linear_before_reset" if self.linear_before_reset else "")


PROBES = [
    Probe("RNN", "i", {}),
    Probe("GRU", "h", {"z": (0, 0), "r": (1, 0)}),                        # Ht = ht
    Probe("GRU", "h", {"z": (0, 0), "r": (1, 0)}, linear_before_reset=1),
    Probe("GRU", "r", {"z": (0, 0), "h": (0, 1)}, linear_before_reset=1),  # ht = rt (.) (0 + Rbh)
    Probe("GRU", "z", {"r": (1, 0), "h": (1, 0)}),                        # Ht = (1 - zt) + zt (.) Ht-1
    Probe("LSTM", "i", {"o": (1, 0), "f": (0, 0), "c": (1, 0)}),          # Ct = it, Ht = Ct
    Probe("LSTM", "o", {"i": (1, 0), "f": (0, 0), "c": (1, 0)}),          # Ct = 1, Ht = ot
    Probe("LSTM", "f", {"i": (1, 0), "o": (1, 0), "c": (1, 0)}),          # Ct = ft (.) Ct-1 + 1 = Ht
    Probe("LSTM", "c", {"i": (1, 0), "o": (1, 0), "f": (0, 0)}),          # Ct = ct = Ht
]


def weights(probe: Probe):
    """(W, R, Wb, Rb) of the probe, in ONNX's gate order, without the direction axis."""
    rng = np.random.default_rng(17)
    gates = len(GATES[probe.op])
    W, R = np.zeros((gates * N_H, N_IN), np.float32), np.zeros((gates * N_H, N_H), np.float32)
    Wb, Rb = np.zeros(gates * N_H, np.float32), np.zeros(gates * N_H, np.float32)
    for k, gate in enumerate(GATES[probe.op]):
        rows = slice(k * N_H, (k + 1) * N_H)
        if gate == probe.gate:
            W[rows] = rng.uniform(-0.5, 0.5, (N_H, N_IN))
            R[rows] = rng.uniform(-1e-4, 1e-4, (N_H, N_H))
            sign = rng.choice([-1, 1], N_H)
            Wb[rows], Rb[rows] = sign * rng.uniform(10, 25, N_H), sign * rng.uniform(10, 25, N_H)
        else:
            Wb[rows], Rb[rows] = probe.held[gate]
    return W, R, Wb, Rb


def write_probe(probe: Probe, path) -> None:
    """The probe as an ONNX file: X [seq, batch, N_IN], the state as graph inputs and outputs."""
    W, R, Wb, Rb = weights(probe)
    activations = {"RNN": 1, "GRU": 2, "LSTM": 3}[probe.op]  # f; f, g; f, g, h
    attrs = dict(hidden_size=N_H, activations=["Affine"] * activations, activation_alpha=[1.0] * activations,
                 activation_beta=[0.0] * activations)
    if probe.linear_before_reset:
        attrs["linear_before_reset"] = 1
    states = ["h", "c"] if probe.op == "LSTM" else ["h"]
    state = [1, "batch", N_H]
    node = helper.make_node(probe.op, ["X", "W", "R", "B", "", *(f"initial_{s}" for s in states)],
                            ["Y", *(f"Y_{s}" for s in states)], **attrs)
    graph = helper.make_graph(
        [node], "probe",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["seq", "batch", N_IN]),
         *(helper.make_tensor_value_info(f"initial_{s}", TensorProto.FLOAT, state) for s in states)],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["seq", 1, "batch", N_H]),
         *(helper.make_tensor_value_info(f"Y_{s}", TensorProto.FLOAT, state) for s in states)],
        [numpy_helper.from_array(W[None], "W"), numpy_helper.from_array(R[None], "R"),
         numpy_helper.from_array(np.concatenate([Wb, Rb])[None], "B")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


def inputs(batch: int) -> np.ndarray:
    return np.random.default_rng(batch).uniform(0, 1e-3, (STEPS, batch, N_IN)).astype(np.float32)


def assert_within_float64_bound(probe: Probe, xs: np.ndarray, ys: np.ndarray) -> None:
    """Each step's output ys[t] (batch, N_H) against the ONNX equations in float64 given the state
    edgeseq had (ys[t - 1]; zeros first), within float32's rounding bound (see the module's)."""
    W, R, Wb, Rb = (v.astype(np.float64) for v in weights(probe))
    rows = slice(GATES[probe.op].index(probe.gate) * N_H, (GATES[probe.op].index(probe.gate) + 1) * N_H)
    W, R, Wb, Rb = W[rows], R[rows], Wb[rows], Rb[rows]
    terms = N_IN + N_H
    gamma = terms * U / (1 - terms * U)
    previous = np.zeros(ys.shape[1:])
    for t, (x, y) in enumerate(zip(xs.astype(np.float64), ys.astype(np.float64))):
        gate = x @ W.T + previous @ R.T + Wb + Rb
        magnitude = np.abs(x) @ np.abs(W.T) + np.abs(previous) @ np.abs(R.T)
        error = gamma * magnitude + 3 * U * (np.abs(Wb) + np.abs(Rb) + magnitude)
        if probe.scaling:  # y = 1 + gate * S; the products and sums of that, rounded twice
            scale = previous - 1 if probe.op == "GRU" else previous
            exact = 1 + gate * scale
            bound = error * np.abs(scale) + 2 * U * (1 + (np.abs(gate) + error) * (1 + np.abs(previous)))
        else:
            exact, bound = gate, error
        worst = np.unravel_index(np.argmax(np.abs(y - exact) / bound), bound.shape)
        assert np.abs(y - exact)[worst] <= bound[worst], \
            f"{probe.name}, step {t}: {np.abs(y - exact)[worst]:.2e} from float64, bound {bound[worst]:.2e}"
        previous = y


@pytest.fixture(scope="module")
def probe_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("recurrent_bias")
    paths = []
    for index, probe in enumerate(PROBES):
        paths.append(folder / f"probe{index}.onnx")
        write_probe(probe, paths[-1])
    return paths


@pytest.mark.parametrize("index", range(len(PROBES)), ids=[probe.name for probe in PROBES])
def test_onnxruntime_is_within_the_bound(probe_files, index):
    """The bound is one a float32 implementation meets: ONNX Runtime's, three streams."""
    session = onnxruntime.InferenceSession(probe_files[index], providers=["CPUExecutionProvider"])
    xs = inputs(3)
    zeros = {i.name: np.zeros((1, 3, N_H), np.float32) for i in session.get_inputs() if i.name != "X"}
    assert_within_float64_bound(PROBES[index], xs, session.run(["Y"], {"X": xs, **zeros})[0][:, 0])


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("index", range(len(PROBES)), ids=[probe.name for probe in PROBES])
def test_a_gate_adds_its_biases_after_its_terms(probe_files, index, batch):
    """step and run alike: run's input projections, made ahead, take no bias either."""
    probe, xs = PROBES[index], inputs(batch)
    stepped = edgeseq_runtime.load(probe_files[index], batch=batch)
    steps = np.stack([stepped.step(x if batch > 1 else x[0]) for x in xs]).reshape(STEPS, batch, N_H)
    ran = edgeseq_runtime.load(probe_files[index], batch=batch).run(xs if batch > 1 else xs[:, 0])
    np.testing.assert_array_equal(ran.reshape(steps.shape), steps)
    assert_within_float64_bound(probe, xs, steps)


def test_a_gate_in_c_adds_its_biases_after_its_terms(builds):
    """The C runtime's recurrent cells, within the same bound, every probe in one gcc build (1 s)."""
    cases = StepCases(builds, "recurrent_bias", len(PROBES), lambda index, path: write_probe(PROBES[index], path))
    xs = inputs(1)
    for index, probe in enumerate(PROBES):
        statuses, got = cases.step(GCC, index, xs[:, 0])
        assert statuses == [0] * STEPS
        assert_within_float64_bound(probe, xs, got.reshape(STEPS, 1, N_H))
