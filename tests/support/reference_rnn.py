"""A slow, obviously-correct float64 numpy reference of the ONNX LSTM, GRU and RNN operators.

Written from the ONNX operator specification (opsets 7 to 22) and using its names: ``X``, ``W``,
``R``, ``B``, ``P``, ``initial_h``, ``initial_c`` and the activation functions ``f``, ``g``, ``h``.
Only ``direction="forward"`` is implemented (the runtime streams nothing else); ``sequence_lens``
is not supported. Nothing here is shared with the runtime: it is an independent reference.

How activation_alpha / activation_beta are consumed
---------------------------------------------------
The spec says: "The values are consumed in the order of activation functions, for example
(f, g, h) in LSTM. Default values are the same as of corresponding ONNX operators."
Measured against onnxruntime 1.32 (tests/test_reference_rnn.py keeps the evidence):

* Each list is consumed *only by the activations that take that parameter*, in activation order
  (f, g, h), not one entry per activation. ``activations=["Tanh", "LeakyRelu"],
  activation_alpha=[0.3]`` gives LeakyRelu alpha 0.3 (one entry per activation would waste 0.3
  on Tanh and give LeakyRelu its default 0.01); ``["HardSigmoid", "Tanh", "Affine"]`` with
  alpha [a0, a1], beta [b0, b1] gives HardSigmoid (a0, b0) and Affine (a1, b1). Values left over
  are ignored. Measured for LSTM and GRU; RNN (one activation forward) agrees.
* alpha is taken by Affine, LeakyRelu, ThresholdedRelu, ScaledTanh, HardSigmoid, Elu; beta by
  Affine, ScaledTanh, HardSigmoid (``TAKES_ALPHA_BETA``).
* An activation that finds its list exhausted gets a default: ``ONNXRUNTIME_DEFAULTS`` (what
  onnxruntime does, used by default) or ``SPEC_DEFAULTS`` (the ONNX operators of the same name).
  They agree for LeakyRelu (0.01), HardSigmoid (0.2, 0.5) and Elu (1.0); they differ for
  ThresholdedRelu (onnxruntime 0, the operator 1.0) and Affine / ScaledTanh (onnxruntime 0, 0).
* onnx.reference.ReferenceEvaluator is no guide: its LSTM and GRU ignore activations, alpha and
  beta altogether; its RNN knows only Tanh and Affine and wants one alpha / beta per direction.

Clip: "applied to the input of activations". onnxruntime clips the inputs of f and g (every gate
pre-activation) but not the input of the LSTM's h: Ht = ot (.) h(Ct), not h(clip(Ct)); the cell
state Ct itself is never clipped. This reference follows onnxruntime (``lstm(clip_h_input=True)``
gives the other, literal reading, which onnx2c implements).
``input_forget=1`` couples the gates as ``ft = 1 - it`` (the forget weights are then unused), as
onnxruntime does.
"""

from __future__ import annotations

import numpy as np

# ---------------------------------------------------------------------------------------------
# Activation functions, as the spec defines them.
# ---------------------------------------------------------------------------------------------


def _relu(x, alpha, beta):
    return np.maximum(x, 0.0)


def _tanh(x, alpha, beta):
    return np.tanh(x)


def _sigmoid(x, alpha, beta):
    return 1.0 / (1.0 + np.exp(-x))


def _affine(x, alpha, beta):
    return alpha * x + beta


def _leaky_relu(x, alpha, beta):
    return np.where(x >= 0.0, x, alpha * x)


def _thresholded_relu(x, alpha, beta):
    # Spec text: "x if x >= alpha else 0"; the ThresholdedRelu operator says "x > alpha". The two
    # differ only at x == alpha exactly, which random float inputs never hit.
    return np.where(x >= alpha, x, 0.0)


def _scaled_tanh(x, alpha, beta):
    return alpha * np.tanh(beta * x)


def _hard_sigmoid(x, alpha, beta):
    return np.minimum(np.maximum(alpha * x + beta, 0.0), 1.0)


def _elu(x, alpha, beta):
    return np.where(x >= 0.0, x, alpha * (np.exp(np.minimum(x, 0.0)) - 1.0))


def _softsign(x, alpha, beta):
    return x / (1.0 + np.abs(x))


def _softplus(x, alpha, beta):
    return np.logaddexp(0.0, x)  # log(1 + e^x) without overflow


ACTIVATIONS = {
    "Relu": _relu,
    "Tanh": _tanh,
    "Sigmoid": _sigmoid,
    "Affine": _affine,
    "LeakyRelu": _leaky_relu,
    "ThresholdedRelu": _thresholded_relu,
    "ScaledTanh": _scaled_tanh,
    "HardSigmoid": _hard_sigmoid,
    "Elu": _elu,
    "Softsign": _softsign,
    "Softplus": _softplus,
}

# Which activations take alpha / beta (the others ignore the lists and do not consume from them).
TAKES_ALPHA_BETA = {
    "Relu": (False, False),
    "Tanh": (False, False),
    "Sigmoid": (False, False),
    "Affine": (True, True),
    "LeakyRelu": (True, False),
    "ThresholdedRelu": (True, False),
    "ScaledTanh": (True, True),
    "HardSigmoid": (True, True),
    "Elu": (True, False),
    "Softsign": (False, False),
    "Softplus": (False, False),
}

# The (alpha, beta) an activation gets when the list has no value left for it.
# onnxruntime (measured): LeakyRelu 0.01, HardSigmoid 0.2/0.5 and Elu 1.0 as the ONNX operators
# of those names; everything else 0 - ThresholdedRelu alpha 0 (its ONNX operator says 1.0),
# Affine 0/0 and ScaledTanh 0/0 (no current ONNX operator; the retired experimental Affine had
# 1.0/0.0, ScaledTanh had no defaults). Tests of the runtime never rely on the values where these
# two tables differ.
ONNXRUNTIME_DEFAULTS = {
    "Affine": (0.0, 0.0),
    "LeakyRelu": (0.01, 0.0),
    "ThresholdedRelu": (0.0, 0.0),
    "ScaledTanh": (0.0, 0.0),
    "HardSigmoid": (0.2, 0.5),
    "Elu": (1.0, 0.0),
}
SPEC_DEFAULTS = {
    "Affine": (1.0, 0.0),
    "LeakyRelu": (0.01, 0.0),
    "ThresholdedRelu": (1.0, 0.0),
    "HardSigmoid": (0.2, 0.5),
    "Elu": (1.0, 0.0),
    # ScaledTanh: none; resolve_activations raises when it would need one.
}

DEFAULT_ACTIVATIONS = {
    "RNN": ["Tanh"],
    "GRU": ["Sigmoid", "Tanh"],
    "LSTM": ["Sigmoid", "Tanh", "Tanh"],
}

def canonical_activation_name(name: str) -> str:
    """The spec's spelling of an activation name (onnxruntime accepts any case)."""
    if isinstance(name, bytes):
        name = name.decode()
    for known in ACTIVATIONS:
        if known.lower() == name.lower():
            return known
    raise ValueError(f"unknown activation {name!r}; the spec defines {sorted(ACTIVATIONS)}")


def resolve_activations(op_type, activations=None, activation_alpha=None, activation_beta=None,
                        defaults=None):
    """The activation callables of one direction of `op_type`, with alpha/beta bound.

    alpha/beta are consumed only by the activations that take them, in activation order (see the
    module docstring); `defaults` (ONNXRUNTIME_DEFAULTS unless given) fills in what the lists
    lack. Returns a list of functions x -> y.
    """
    defaults = ONNXRUNTIME_DEFAULTS if defaults is None else defaults
    names = list(activations) if activations else list(DEFAULT_ACTIVATIONS[op_type])
    expected = len(DEFAULT_ACTIVATIONS[op_type])
    if len(names) != expected:
        raise ValueError(f"{op_type} forward takes {expected} activations, got {names}")
    alphas = list(activation_alpha or [])
    betas = list(activation_beta or [])
    funcs = []
    for name in names:
        name = canonical_activation_name(name)
        takes_alpha, takes_beta = TAKES_ALPHA_BETA[name]
        alpha = beta = 0.0
        if takes_alpha:
            alpha = alphas.pop(0) if alphas else _default(defaults, name, 0)
        if takes_beta:
            beta = betas.pop(0) if betas else _default(defaults, name, 1)
        fn = ACTIVATIONS[name]
        funcs.append(lambda x, fn=fn, alpha=float(alpha), beta=float(beta): fn(x, alpha, beta))
    return funcs


def _default(defaults, name, k):
    if name not in defaults:
        raise ValueError(f"{name} needs activation_{'alpha' if k == 0 else 'beta'}: no default")
    return defaults[name][k]


def _clipper(clip):
    if clip is None:
        return lambda x: x
    return lambda x: np.clip(x, -clip, clip)


# ---------------------------------------------------------------------------------------------
# Shapes: layout, defaults for the optional inputs.
# ---------------------------------------------------------------------------------------------


def _prepare(X, W, R, B, initial_states, num_gates, layout, direction):
    """float64 copies in layout 0, one direction squeezed out; zero defaults for B and states."""
    if direction != "forward":
        raise NotImplementedError(
            f"reference_rnn implements direction='forward' only, not {direction!r}")
    X = np.asarray(X, dtype=np.float64)
    if layout == 1:  # X: [batch, seq, input] -> [seq, batch, input]
        X = X.transpose(1, 0, 2)
    elif layout != 0:
        raise ValueError(f"layout must be 0 or 1, got {layout!r}")
    seq_length, batch_size, _ = X.shape
    W = np.asarray(W, dtype=np.float64)[0]  # [num_gates*hidden, input]
    R = np.asarray(R, dtype=np.float64)[0]  # [num_gates*hidden, hidden]
    hidden_size = R.shape[-1]
    if B is None:
        B = np.zeros(2 * num_gates * hidden_size)
    else:
        B = np.asarray(B, dtype=np.float64)[0]
    states = []
    for s in initial_states:
        if s is None:
            s = np.zeros((batch_size, hidden_size))
        else:
            s = np.asarray(s, dtype=np.float64)
            if layout == 1:  # [batch, num_directions, hidden]
                s = s.transpose(1, 0, 2)
            s = s[0]
        states.append(s)
    return X, W, R, B, states, hidden_size


def _finish(layout, Y_list, *finals):
    """Add back the num_directions axis; layout 1 puts batch first."""
    Y = np.stack(Y_list)[:, None]  # [seq, num_directions, batch, hidden]
    finals = [f[None] for f in finals]  # [num_directions, batch, hidden]
    if layout == 1:
        Y = Y.transpose(2, 0, 1, 3)  # [batch, seq, num_directions, hidden]
        finals = [f.transpose(1, 0, 2) for f in finals]  # [batch, num_directions, hidden]
    return (Y, *finals)


# ---------------------------------------------------------------------------------------------
# The three operators.
# ---------------------------------------------------------------------------------------------


def rnn(X, W, R, B=None, initial_h=None, *, activations=None, activation_alpha=None,
        activation_beta=None, clip=None, direction="forward", hidden_size=None, layout=0):
    """ONNX RNN. Returns (Y, Y_h) in float64."""
    X, W, R, B, (H,), _ = _prepare(X, W, R, B, [initial_h], 1, layout, direction)
    (f,) = resolve_activations("RNN", activations, activation_alpha, activation_beta)
    clipped = _clipper(clip)
    Wi, Ri = W, R
    Wbi, Rbi = np.split(B, 2)
    Y = []
    for Xt in X:
        # Ht = f(Xt*(Wi^T) + Ht-1*(Ri^T) + Wbi + Rbi)
        H = f(clipped(Xt @ Wi.T + H @ Ri.T + Wbi + Rbi))
        Y.append(H)
    return _finish(layout, Y, H)


def gru(X, W, R, B=None, initial_h=None, *, activations=None, activation_alpha=None,
        activation_beta=None, clip=None, direction="forward", hidden_size=None, layout=0,
        linear_before_reset=0):
    """ONNX GRU. Returns (Y, Y_h) in float64."""
    X, W, R, B, (H,), _ = _prepare(X, W, R, B, [initial_h], 3, layout, direction)
    f, g = resolve_activations("GRU", activations, activation_alpha, activation_beta)
    clipped = _clipper(clip)
    Wz, Wr, Wh = np.split(W, 3)
    Rz, Rr, Rh = np.split(R, 3)
    Wbz, Wbr, Wbh, Rbz, Rbr, Rbh = np.split(B, 6)
    Y = []
    for Xt in X:  # the spec's equations, one line each
        z = f(clipped(Xt @ Wz.T + H @ Rz.T + Wbz + Rbz))
        r = f(clipped(Xt @ Wr.T + H @ Rr.T + Wbr + Rbr))
        if linear_before_reset:
            h = g(clipped(Xt @ Wh.T + r * (H @ Rh.T + Rbh) + Wbh))
        else:
            h = g(clipped(Xt @ Wh.T + (r * H) @ Rh.T + Rbh + Wbh))
        H = (1.0 - z) * h + z * H
        Y.append(H)
    return _finish(layout, Y, H)


def lstm(X, W, R, B=None, initial_h=None, initial_c=None, P=None, *, activations=None,
         activation_alpha=None, activation_beta=None, clip=None, direction="forward",
         hidden_size=None, input_forget=0, layout=0, clip_h_input=False):
    """ONNX LSTM. Returns (Y, Y_h, Y_c) in float64.

    clip_h_input: also clip the input of h, Ht = ot (.) h(clip(Ct)). The spec's "applied to the
    input of activations" reads that way (onnx2c does it); onnxruntime does not (it clips the
    inputs of f and g only), and the default follows onnxruntime.
    """
    X, W, R, B, (H, C), hidden = _prepare(X, W, R, B, [initial_h, initial_c], 4, layout, direction)
    f, g, h = resolve_activations("LSTM", activations, activation_alpha, activation_beta)
    clipped = _clipper(clip)
    Wi, Wo, Wf, Wc = np.split(W, 4)
    Ri, Ro, Rf, Rc = np.split(R, 4)
    Wbi, Wbo, Wbf, Wbc, Rbi, Rbo, Rbf, Rbc = np.split(B, 8)
    if P is None:
        Pi = Po = Pf = np.zeros(hidden)
    else:
        Pi, Po, Pf = np.split(np.asarray(P, dtype=np.float64)[0], 3)
    Y = []
    for Xt in X:  # the spec's equations, one line each (ft: the forget gate, ct: the cell gate)
        i = f(clipped(Xt @ Wi.T + H @ Ri.T + Pi * C + Wbi + Rbi))
        if input_forget:
            ft = 1.0 - i
        else:
            ft = f(clipped(Xt @ Wf.T + H @ Rf.T + Pf * C + Wbf + Rbf))
        ct = g(clipped(Xt @ Wc.T + H @ Rc.T + Wbc + Rbc))
        C = ft * C + i * ct
        o = f(clipped(Xt @ Wo.T + H @ Ro.T + Po * C + Wbo + Rbo))
        H = o * h(clipped(C) if clip_h_input else C)
        Y.append(H)
    return _finish(layout, Y, H, C)


OPS = {"RNN": rnn, "GRU": gru, "LSTM": lstm}

# The node's inputs in ONNX order (after X, W, R), as the keyword names above.
OPTIONAL_INPUTS = {
    "RNN": ["B", "sequence_lens", "initial_h"],
    "GRU": ["B", "sequence_lens", "initial_h"],
    "LSTM": ["B", "sequence_lens", "initial_h", "initial_c", "P"],
}


def run_node(node, values):
    """Evaluate one ONNX RNN/GRU/LSTM NodeProto; `values` maps tensor names to arrays.

    Returns the node's outputs as a dict name -> float64 array (empty output names skipped).
    """
    from onnx import helper

    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    kwargs = {}
    for key in ("activation_alpha", "activation_beta"):
        if key in attrs:
            kwargs[key] = list(attrs[key])
    if "activations" in attrs:
        kwargs["activations"] = [a.decode() if isinstance(a, bytes) else a
                                 for a in attrs["activations"]]
    if "direction" in attrs:
        d = attrs["direction"]
        kwargs["direction"] = d.decode() if isinstance(d, bytes) else d
    for key in ("clip",):
        if key in attrs:
            kwargs[key] = float(attrs[key])
    for key in ("layout", "input_forget", "linear_before_reset", "hidden_size"):
        if key in attrs:
            kwargs[key] = int(attrs[key])
    inputs = list(node.input)
    args = [values[n] for n in inputs[:3]]
    for name, key in zip(inputs[3:], OPTIONAL_INPUTS[node.op_type]):
        if name:
            if key == "sequence_lens":
                raise NotImplementedError("reference_rnn does not implement sequence_lens")
            kwargs[key] = values[name]
    outs = OPS[node.op_type](*args, **kwargs)
    return {name: out for name, out in zip(node.output, outs) if name}


# ---------------------------------------------------------------------------------------------
# A whole graph, in float64: the recurrent nodes above plus the few glue and head ops that
# tests/support/onnx_builders.py emits. Straight numpy, one line per op, no shape checks.
# ---------------------------------------------------------------------------------------------


def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _reshape(x, shape):
    # 0 copies the input's dim (allowzero=0), -1 is inferred
    shape = [x.shape[i] if d == 0 else int(d) for i, d in enumerate(shape)]
    return x.reshape(shape)


def _slice(x, starts, ends, axes=None, steps=None):
    axes = range(len(starts)) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    index = [slice(None)] * x.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        index[int(a)] = slice(int(s), int(e), int(st))
    return x[tuple(index)]


def _axes(attrs, axes):
    """Squeeze / Unsqueeze axes: an input since opset 13, an attribute before."""
    return tuple(int(i) for i in (axes if axes is not None else attrs["axes"]))


def _gemm(attrs, A, B, C=0.0):
    A = A.T if attrs.get("transA") else A
    B = B.T if attrs.get("transB") else B
    return attrs.get("alpha", 1.0) * (A @ B) + attrs.get("beta", 1.0) * C


_GLUE = {
    "Identity": lambda a, x: x,
    "Squeeze": lambda a, x, axes=None: np.squeeze(x, axis=_axes(a, axes)),
    "Unsqueeze": lambda a, x, axes=None: np.expand_dims(x, _axes(a, axes)),
    "Reshape": lambda a, x, shape: _reshape(x, shape),
    "Transpose": lambda a, x: np.transpose(x, a.get("perm")),
    "MatMul": lambda a, x, y: np.matmul(x, y),
    "Add": lambda a, x, y: x + y,
    "Sub": lambda a, x, y: x - y,
    "Mul": lambda a, x, y: x * y,
    "Div": lambda a, x, y: x / y,
    "Gemm": _gemm,
    "Relu": lambda a, x: np.maximum(x, 0.0),
    "Tanh": lambda a, x: np.tanh(x),
    "Sigmoid": lambda a, x: 1.0 / (1.0 + np.exp(-x)),
    "LeakyRelu": lambda a, x: np.where(x >= 0, x, a.get("alpha", 0.01) * x),
    "Softmax": lambda a, x: _softmax(x, a.get("axis", -1)),
    "LogSoftmax": lambda a, x: np.log(_softmax(x, a.get("axis", -1))),
    "Gather": lambda a, data, idx: np.take(data, idx, axis=a.get("axis", 0)),
    "Slice": lambda a, x, *args: _slice(x, *args),
    "Concat": lambda a, *xs: np.concatenate(xs, axis=a["axis"]),
}


def run_graph(model, feeds):
    """Run an ONNX ModelProto in float64; returns the graph outputs in order (opset >= 13 forms)."""
    from onnx import helper, numpy_helper

    def f64(a):
        a = np.asarray(a)
        return a.astype(np.float64) if a.dtype.kind == "f" else a

    values = {t.name: f64(numpy_helper.to_array(t)) for t in model.graph.initializer}
    values.update({k: f64(v) for k, v in feeds.items()})
    for node in model.graph.node:
        if node.op_type in OPS:
            values.update(run_node(node, values))
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Constant":
            values[node.output[0]] = f64(numpy_helper.to_array(attrs["value"]))
            continue
        if node.op_type not in _GLUE:
            raise NotImplementedError(
                f"run_graph does not implement {node.op_type} (node {node.name!r})")
        args = [values[n] if n else None for n in node.input]
        values[node.output[0]] = _GLUE[node.op_type](attrs, *args)
    return [values[o.name] for o in model.graph.output]
