"""Build small ONNX recurrent models with `onnx.helper` for the tests, and run references on them.

`build_model(tmp_path, "LSTM", ...)` writes a checked model file and returns a `Built`: the model,
its path and what a test needs to drive it one step at a time and compare with references:

* the per-step calling convention of edgeseq_runtime (x is (input_size,) for batch 1, else
  (batch, input_size); token models take int64 ids, input_size 1);
* `graph_feeds(X)`: the same T steps as one whole-sequence feed of the graph (layout, batch axis,
  zero initial state for state graph inputs);
* `steps_from_output(Y)`: a graph output back to per-step rows (T, [batch,] output_size);
* `reference_numpy / reference_onnxruntime / reference_onnx(X)`: per-step outputs from the
  float64 numpy reference (always), onnxruntime and onnx.reference.ReferenceEvaluator (only where
  `supports` says they implement every attribute used, see ORT_GAPS / ONNX_REFERENCE_GAPS).

Models whose output has no time axis (a head on Y_h) are evaluated on every prefix X[:t+1]:
the output after step t is the whole-sequence output of the first t+1 steps.

Graph shapes: X is [seq, batch, input] (layout 0) or [batch, seq, input] (layout 1); `seq_dim` and
`batch_dim` are symbolic ('seq', 'batch') unless given as ints. Recurrent state that is a graph
input is named `<node>_initial_h` / `<node>_initial_c` (or `h0` / `c0` with stacked_state).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from support import reference_rnn

NUM_GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
OPSET = 17

# What the other references cannot do (measured with onnxruntime 1.32 and onnx 1.23; the
# evidence is in test_reference_rnn.py):
# - onnxruntime (CPU): layout=1 is rejected for LSTM, GRU and RNN ("Batchwise recurrent
#   operations (layout == 1) are not supported"), and so is a node without the (optional)
#   hidden_size attribute. Everything else used here it implements.
#   LSTM clip: onnxruntime clips the inputs of f and g but not of h (H = o * h(Ct)), and
#   reference_rnn follows it.
# - onnx.reference.ReferenceEvaluator: ignores `activations`, `clip` and `input_forget` of LSTM
#   and GRU silently (always Sigmoid/Tanh, no clip, no coupling) and ignores `clip` of RNN; its RNN
#   knows only the Tanh and Affine activations and wants exactly num_directions alpha/beta values.
#   layout=1, peepholes, linear_before_reset, optional B and initial state work.
ORT_GAPS = ("layout=1", "hidden_size attribute absent")
ONNX_REFERENCE_GAPS = ("activations (LSTM, GRU; RNN: all but Tanh/Affine)", "clip", "input_forget")


# A stable (alpha, beta) for each of the spec's activations: with weights uniform(-0.3, 0.3)
# (build_model(scale=0.3)) even the unbounded ones stay bounded over 50+ steps.
ACTIVATION_PARAMS = {
    "Relu": ([], []),
    "Tanh": ([], []),
    "Sigmoid": ([], []),
    "Affine": ([0.6], [0.1]),
    "LeakyRelu": ([0.1], []),
    "ThresholdedRelu": ([0.1], []),
    "ScaledTanh": ([0.8], [1.2]),
    "HardSigmoid": ([0.3], [0.4]),
    "Elu": ([0.7], []),
    "Softsign": ([], []),
    "Softplus": ([], []),
}


# (op, activations, activation_alpha, activation_beta): lists shorter than the activations,
# consumed only by the activations that take alpha / beta (as onnxruntime does).
ALPHA_BETA_CASES = [
    ("GRU", ["Tanh", "LeakyRelu"], [0.3], []),
    ("GRU", ["Sigmoid", "HardSigmoid"], [0.3], [0.45]),
    ("LSTM", ["Sigmoid", "LeakyRelu", "Affine"], [0.1, 0.6], [0.2]),
    ("LSTM", ["HardSigmoid", "Tanh", "Affine"], [0.3, 0.7], [0.4, 0.2]),
    ("LSTM", ["Sigmoid", "ScaledTanh", "ThresholdedRelu"], [0.9, 0.05], [1.3]),
]


def activation_cases(name):
    """(op, attrs) cases with activation `name` as RNN f, GRU g, LSTM g and LSTM h (where even an
    unbounded one does not diverge). The gate activation f is a HardSigmoid with its own
    alpha/beta in the GRU and first LSTM case, so the lists carry values for two activations;
    in the last case Sigmoid and Tanh take none, so a one-entry-per-activation reading fails.
    """
    alpha, beta = ACTIVATION_PARAMS[name]
    cases = [("RNN", {"activations": [name]}, alpha, beta),
             ("GRU", {"activations": ["HardSigmoid", name]}, [0.25] + alpha, [0.55] + beta),
             ("LSTM", {"activations": ["HardSigmoid", name, "Tanh"]}, [0.25] + alpha,
              [0.55] + beta),
             ("LSTM", {"activations": ["Sigmoid", "Tanh", name]}, alpha, beta)]
    out = []
    for op, attrs, a, b in cases:
        attrs = dict(attrs)
        if a:
            attrs["activation_alpha"] = a
        if b:
            attrs["activation_beta"] = b
        out.append((op, attrs))
    return out


def onnxruntime_supports(attrs: dict) -> bool:
    return attrs.get("layout", 0) == 0


def onnx_reference_supports(op: str, attrs: dict) -> bool:
    if "clip" in attrs or attrs.get("input_forget", 0):
        return False
    acts = attrs.get("activations")
    if acts is None:
        return op != "RNN" or not ({"activation_alpha", "activation_beta"} & set(attrs))
    names = [reference_rnn.canonical_activation_name(a) for a in acts]
    if op == "RNN":
        for key in ("activation_alpha", "activation_beta"):
            if key in attrs and len(attrs[key]) != 1:
                return False
        if names == ["Tanh"]:
            return True
        return names == ["Affine"] and len(attrs.get("activation_alpha", [])) == 1 \
            and len(attrs.get("activation_beta", [])) == 1
    return names == reference_rnn.DEFAULT_ACTIVATIONS[op]


@dataclass
class Built:
    """A model file plus what the tests need to stream it and to compute its references."""

    model: onnx.ModelProto
    path: Path
    batch: int
    input_size: int  # per-step features; 1 for token models
    output_size: int
    layout: int = 0  # of the graph input X
    vocab: int | None = None  # token models: the embedding's number of rows
    state_inputs: dict = field(default_factory=dict)  # graph input name -> shape, batch filled in
    out_time_axis: int | None = 0  # of the graph output; None: no time axis (head on Y_h)
    out_batch_axis: int = 1
    out_drop_axes: tuple = ()  # singleton axes (num_directions) dropped per step
    supports: frozenset = frozenset()  # {"onnxruntime", "onnx_reference"}
    node_names: tuple = ()  # names of the recurrent nodes

    @property
    def output_name(self) -> str:
        """The model's output: the first graph output that is not a recurrent node's Y_h / Y_c."""
        state = {o for n in self.model.graph.node if n.op_type in NUM_GATES for o in n.output[1:]}
        return next(o.name for o in self.model.graph.output if o.name not in state)

    # --- inputs ------------------------------------------------------------------------------

    @property
    def is_token_model(self) -> bool:
        return self.vocab is not None

    def step_shape(self) -> tuple:
        return (self.input_size,) if self.batch == 1 else (self.batch, self.input_size)

    def random_steps(self, rng: np.random.Generator, T: int, scale: float = 1.0) -> np.ndarray:
        """T steps as the runtime takes them: (T, input_size) or (T, batch, input_size)."""
        shape = (T, *self.step_shape())
        if self.is_token_model:
            return rng.integers(0, self.vocab, size=shape, dtype=np.int64)
        return rng.uniform(-scale, scale, size=shape).astype(np.float32)

    def graph_feeds(self, X: np.ndarray, state: dict | None = None) -> dict:
        """The graph's feeds for running the T steps of X as one sequence, starting from `state`
        (graph input name -> array; zeros for the state inputs it leaves out)."""
        X = np.asarray(X)
        T = X.shape[0]
        X = X.reshape(T, self.batch, self.input_size)  # [seq, batch, input]
        if self.is_token_model:
            X = X[:, :, 0]  # [seq, batch] of ids
        elif self.layout == 1:
            X = X.transpose(1, 0, 2)
        feeds = {self.model.graph.input[0].name: np.ascontiguousarray(X)}
        for name, shape in self.state_inputs.items():
            value = (state or {}).get(name)
            feeds[name] = (np.zeros(shape, np.float32) if value is None
                           else np.asarray(value, np.float32))
        return feeds

    # --- outputs -----------------------------------------------------------------------------

    def steps_from_output(self, Y: np.ndarray) -> np.ndarray:
        """A whole-sequence graph output -> (T, output_size) or (T, batch, output_size)."""
        Y = np.asarray(Y)
        assert self.out_time_axis is not None
        Y = np.squeeze(Y, axis=self.out_drop_axes) if self.out_drop_axes else Y
        t, b = self.out_time_axis, self.out_batch_axis
        # after dropping, the remaining axes are time, batch, features in some order
        Y = np.moveaxis(Y, (t, b), (0, 1))
        assert Y.shape[2:] == (self.output_size,), Y.shape
        return Y[:, 0] if self.batch == 1 else Y

    def last_step_from_output(self, Y: np.ndarray) -> np.ndarray:
        """An output without time axis -> (output_size,) or (batch, output_size)."""
        Y = np.asarray(Y)
        Y = np.squeeze(Y, axis=self.out_drop_axes) if self.out_drop_axes else Y
        Y = np.moveaxis(Y, self.out_batch_axis, 0)
        assert Y.shape[1:] == (self.output_size,), Y.shape
        return Y[0] if self.batch == 1 else Y

    def _per_step(self, run, X: np.ndarray, state: dict | None) -> np.ndarray:
        if self.out_time_axis is not None:
            return self.steps_from_output(run(self.graph_feeds(X, state)))
        return np.stack([self.last_step_from_output(run(self.graph_feeds(X[: t + 1], state)))
                         for t in range(len(X))])

    def reference_numpy(self, X: np.ndarray, state: dict | None = None) -> np.ndarray:
        """Per-step outputs, float64, from reference_rnn.run_graph."""
        names = [o.name for o in self.model.graph.output]
        k = names.index(self.output_name)
        return self._per_step(lambda feeds: reference_rnn.run_graph(self.model, feeds)[k], X, state)

    def reference_onnxruntime(self, X: np.ndarray, state: dict | None = None) -> np.ndarray:
        import onnxruntime as ort

        session = ort.InferenceSession(self.model.SerializeToString(),
                                       providers=["CPUExecutionProvider"])
        return self._per_step(lambda feeds: session.run([self.output_name], feeds)[0], X, state)

    def reference_onnx(self, X: np.ndarray, state: dict | None = None) -> np.ndarray:
        from onnx.reference import ReferenceEvaluator

        evaluator = ReferenceEvaluator(self.model)
        return self._per_step(lambda feeds: evaluator.run([self.output_name], feeds)[0], X, state)

    def references(self, X: np.ndarray, state: dict | None = None) -> dict:
        """name -> per-step outputs, for every reference that implements this model."""
        out = {"numpy": self.reference_numpy(X, state)}
        if "onnxruntime" in self.supports:
            out["onnxruntime"] = self.reference_onnxruntime(X, state)
        if "onnx_reference" in self.supports:
            out["onnx_reference"] = self.reference_onnx(X, state)
        return out


# ---------------------------------------------------------------------------------------------
# Graph assembly
# ---------------------------------------------------------------------------------------------


class _Graph:
    """Collects nodes, initializers, inputs and outputs; names are unique by construction."""

    def __init__(self, rng: np.random.Generator, scale: float = 0.5):
        self.rng, self.scale = rng, scale
        self.nodes, self.initializers, self.inputs, self.outputs = [], [], [], []

    def const(self, name: str, array) -> str:
        self.initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def weight(self, name: str, shape, scale: float | None = None) -> str:
        scale = self.scale if scale is None else scale
        return self.const(name, self.rng.uniform(-scale, scale, size=shape).astype(np.float32))

    def ints(self, name: str, values) -> str:
        return self.const(name, np.asarray(values, dtype=np.int64))

    def node(self, op: str, inputs, outputs, name: str, **attrs) -> list:
        self.nodes.append(helper.make_node(op, list(inputs), list(outputs), name=name, **attrs))
        return list(outputs)

    def input(self, name: str, elem_type, shape) -> str:
        self.inputs.append(helper.make_tensor_value_info(name, elem_type, shape))
        return name

    def output(self, name: str, shape) -> None:
        self.outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, shape))

    def model(self, opset: int, name: str = "edgeseq_test") -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, name, self.inputs, self.outputs, self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                                  producer_name="edgeseq-tests")
        model.ir_version = min(model.ir_version, 8)  # loadable by older onnxruntime too
        onnx.checker.check_model(model, full_check=True)
        return model


def _state_shape(layout: int, num_directions: int, batch, hidden: int) -> list:
    return [num_directions, batch, hidden] if layout == 0 else [batch, num_directions, hidden]


def _recurrent_layer(g: _Graph, op: str, name: str, x: str, input_size: int, hidden: int, *,
                     layout: int, batch_dim, state: str, bias: bool, peepholes: bool,
                     direction: str, attrs: dict, initial: tuple = (), empty_y: bool = False,
                     hidden_size_attr: bool = True) -> dict:
    """One LSTM/GRU/RNN node on x. Returns its output names and its state graph inputs.

    state: "input" (graph inputs <name>_initial_h/_c, the streaming state), "initializer"
    (random constants, not graph inputs), "absent" (not wired; zeros), or "given" (`initial`
    holds the tensor names to wire).
    """
    num_directions = 2 if direction == "bidirectional" else 1
    gates = NUM_GATES[op]
    inputs = [x, g.weight(f"{name}_W", (num_directions, gates * hidden, input_size)),
              g.weight(f"{name}_R", (num_directions, gates * hidden, hidden))]
    inputs.append(g.weight(f"{name}_B", (num_directions, 2 * gates * hidden)) if bias else "")
    inputs.append("")  # sequence_lens
    state_names = ["initial_h", "initial_c"] if op == "LSTM" else ["initial_h"]
    state_inputs = {}
    shape = _state_shape(layout, num_directions, batch_dim, hidden)
    for k, s in enumerate(state_names):
        if state == "input":
            inputs.append(g.input(f"{name}_{s}", TensorProto.FLOAT, shape))
            state_inputs[f"{name}_{s}"] = shape
        elif state == "initializer":
            if not isinstance(batch_dim, int):
                raise ValueError("an initializer initial state needs a fixed batch_dim")
            inputs.append(g.weight(f"{name}_{s}", [d if isinstance(d, int) else batch_dim
                                                   for d in shape]))
        elif state == "given":
            inputs.append(initial[k])
        elif state == "absent":
            inputs.append("")
        else:
            raise ValueError(f"state must be input, initializer, given or absent, not {state!r}")
    if peepholes:
        if op != "LSTM":
            raise ValueError("peepholes (P) exist only on LSTM")
        inputs.append(g.weight(f"{name}_P", (num_directions, 3 * hidden)))
    while inputs[-1] == "":
        inputs.pop()
    outputs = ["" if empty_y else f"{name}_Y", f"{name}_Y_h"]
    if op == "LSTM":
        outputs.append(f"{name}_Y_c")
    node_attrs = {k: v for k, v in attrs.items() if not (isinstance(v, (list, tuple)) and not v)}
    if hidden_size_attr:  # optional in the schema (R's shape has it); onnxruntime wants it
        node_attrs["hidden_size"] = hidden
    if direction != "forward":
        node_attrs["direction"] = direction
    if layout:
        node_attrs["layout"] = layout
    g.node(op, inputs, outputs, name, **node_attrs)
    return {"Y": outputs[0], "Y_h": outputs[1], "Y_c": outputs[2] if op == "LSTM" else None,
            "state_inputs": state_inputs, "num_directions": num_directions}


def build_model(tmp_path, op: str = "LSTM", *, input_size: int = 4, hidden_size: int = 8,
                num_layers: int = 1, batch: int = 1, seq_dim="seq", batch_dim="batch",
                layout: int = 0, state: str = "input", state_outputs: bool = True,
                stacked_state: bool = False, glue: str = "squeeze", bias: bool = True,
                peepholes: bool = False, direction: str = "forward", head: str | None = None,
                head_activation: str | None = None, output_size: int = 5,
                vocab: int | None = None, embedding_size: int = 6, seed: int = 0,
                opset: int = OPSET, filename: str | None = None, scale: float = 0.5,
                state_outputs_first: bool = False, empty_y: bool = False,
                hidden_size_attr: bool = True, **attrs) -> Built:
    """Build, check and save one recurrent model; return it as a Built.

    op: "LSTM", "GRU" or "RNN". attrs: the node's other attributes (activations,
    activation_alpha, activation_beta, clip, input_forget, linear_before_reset).
    num_layers > 1 stacks layers with exporter glue between them: glue="squeeze"
    (Squeeze the direction axis) or "transpose_reshape" (Transpose [0,2,1,3] + Reshape [0,0,-1],
    what PyTorch emits for bidirectional layers). stacked_state=True gives PyTorch's state form:
    one graph input h0 (and c0) [num_layers, batch, hidden], Slice'd per layer, and the final
    states Concat'ed into outputs hn (and cn).
    head: None (the output is the last layer's Y), "matmul" (Squeeze + MatMul + Add on Y, one
    output per step) or "gemm" (Squeeze + Gemm on Y_h). head_activation: None, "Relu", "Tanh",
    "Sigmoid", "Softmax", "LogSoftmax".
    vocab: make a token model - an int64 input [seq, batch] and Gather on an embedding
    initializer [vocab, embedding_size] in front of the first layer.
    scale: weights are uniform(-scale, scale).
    state_outputs_first: list Y_h / Y_c before the model's output among the graph outputs.
    empty_y: the last layer's Y output is "" (unused; needs head="gemm", which reads Y_h).
    hidden_size_attr=False leaves out the (optional) hidden_size attribute.
    """
    if op not in NUM_GATES:
        raise ValueError(f"op must be one of {sorted(NUM_GATES)}, not {op!r}")
    rng = np.random.default_rng(seed)
    g = _Graph(rng, scale)
    bdim = batch if batch_dim is None else batch_dim
    if vocab is not None:
        if layout != 0:
            raise ValueError("token models here are layout 0")
        ids = g.input("tokens", TensorProto.INT64, [seq_dim, bdim])
        emb = g.weight("embedding", (vocab, embedding_size), scale=1.0)
        (x,) = g.node("Gather", [emb, ids], ["embedded"], "embedding_gather", axis=0)
        features, step_input_size = embedding_size, 1
    else:
        xshape = [seq_dim, bdim, input_size] if layout == 0 else [bdim, seq_dim, input_size]
        x = g.input("X", TensorProto.FLOAT, xshape)
        features, step_input_size = input_size, input_size

    state_inputs = {}
    stacked = {}  # stacked_state: "h"/"c" -> graph input name
    if stacked_state:
        if layout != 0 or state != "input":
            raise ValueError("stacked_state is PyTorch's form: layout 0, state inputs")
        for s in (["h", "c"] if op == "LSTM" else ["h"]):
            shape = [num_layers, bdim, hidden_size]
            stacked[s] = g.input(f"{s}0", TensorProto.FLOAT, shape)
            state_inputs[f"{s}0"] = shape

    layers = []
    dir_axis = 1 if layout == 0 else 2
    for layer in range(num_layers):
        name = f"{op.lower()}_{layer}"
        initial = ()
        layer_state = state
        if stacked_state:
            layer_state = "given"
            initial = tuple(
                g.node("Slice", [stacked[s], g.ints(f"{name}_{s}_start", [layer]),
                                 g.ints(f"{name}_{s}_end", [layer + 1]),
                                 g.ints(f"{name}_{s}_axes", [0])],
                       [f"{name}_{s}0_slice"], f"{name}_{s}0_slice")[0]
                for s in stacked)
        out = _recurrent_layer(g, op, name, x, features, hidden_size, layout=layout,
                               batch_dim=bdim, state=layer_state, bias=bias, peepholes=peepholes,
                               direction=direction, attrs=attrs, initial=initial,
                               empty_y=empty_y and layer + 1 == num_layers,
                               hidden_size_attr=hidden_size_attr)
        layers.append(out)
        state_inputs.update(out["state_inputs"])
        if layer + 1 < num_layers:  # glue to the next layer: [seq, batch, num_dir*hidden]
            if glue == "squeeze":
                (x,) = g.node("Squeeze", [out["Y"], g.ints(f"{name}_squeeze_axes", [dir_axis])],
                              [f"{name}_Y_squeezed"], f"{name}_squeeze")
            elif glue == "transpose_reshape":
                if layout != 0:
                    raise ValueError("transpose_reshape glue is for layout 0")
                (t,) = g.node("Transpose", [out["Y"]], [f"{name}_Y_t"], f"{name}_transpose",
                              perm=[0, 2, 1, 3])
                (x,) = g.node("Reshape", [t, g.ints(f"{name}_reshape_shape", [0, 0, -1])],
                              [f"{name}_Y_flat"], f"{name}_reshape")
            else:
                raise ValueError(f"glue must be squeeze or transpose_reshape, not {glue!r}")
            features = hidden_size * out["num_directions"]

    last = layers[-1]
    nd = last["num_directions"]
    seq_out = [seq_dim, nd, bdim, hidden_size] if layout == 0 else [bdim, seq_dim, nd, hidden_size]
    if head is None:
        main, main_shape = last["Y"], seq_out
        out_time_axis, out_batch_axis = (0, 1) if layout == 0 else (1, 0)
        out_drop_axes, out_size = (dir_axis,), hidden_size
    elif head == "matmul":
        (y,) = g.node("Squeeze", [last["Y"], g.ints("head_squeeze_axes", [dir_axis])],
                      ["head_in"], "head_squeeze")
        (y,) = g.node("MatMul", [y, g.weight("head_W", (hidden_size, output_size))],
                      ["head_matmul"], "head_matmul")
        (main,) = g.node("Add", [y, g.weight("head_b", (output_size,))], ["head_add"], "head_add")
        main_shape = ([seq_dim, bdim, output_size] if layout == 0
                      else [bdim, seq_dim, output_size])
        out_time_axis, out_batch_axis = (0, 1) if layout == 0 else (1, 0)
        out_drop_axes, out_size = (), output_size
    elif head == "gemm":
        axes = g.ints("head_squeeze_axes", [0 if layout == 0 else 1])  # Y_h's num_directions
        (y,) = g.node("Squeeze", [last["Y_h"], axes], ["head_in"], "head_squeeze")
        (main,) = g.node("Gemm", [y, g.weight("head_W", (output_size, hidden_size)),
                                  g.weight("head_b", (output_size,))],
                         ["head_gemm"], "head_gemm", transB=1)
        main_shape = [bdim, output_size]
        out_time_axis, out_batch_axis, out_drop_axes, out_size = None, 0, (), output_size
    else:
        raise ValueError(f"head must be None, 'matmul' or 'gemm', not {head!r}")
    if head_activation is not None:
        if head is None:
            raise ValueError("head_activation needs a head")
        kw = {"axis": -1} if head_activation in ("Softmax", "LogSoftmax") else {}
        (main,) = g.node(head_activation, [main], ["output"], "head_activation", **kw)
    g.output(main, main_shape)

    if empty_y and head != "gemm":
        raise ValueError("empty_y needs head='gemm' (the output comes from Y_h)")
    if state_outputs:
        state_shape = _state_shape(layout, nd, bdim, hidden_size)
        if stacked_state:
            for s in stacked:
                key = "Y_h" if s == "h" else "Y_c"
                g.node("Concat", [lay[key] for lay in layers], [f"{s}n"], f"{s}n_concat", axis=0)
                g.output(f"{s}n", [num_layers, bdim, hidden_size])
        else:
            for lay in layers:
                for key in ("Y_h", "Y_c"):
                    if lay[key] and lay[key] != main:
                        g.output(lay[key], state_shape)

    if state_outputs_first:
        g.outputs = g.outputs[1:] + g.outputs[:1]
    model = g.model(opset)
    path = Path(tmp_path) / (filename or f"{op.lower()}_{seed}.onnx")
    onnx.save(model, str(path))
    fixed = {name: tuple(batch if not isinstance(d, int) else d for d in shape)
             for name, shape in state_inputs.items()}
    supports = set()
    if onnxruntime_supports(dict(attrs, layout=layout)) and hidden_size_attr:
        supports.add("onnxruntime")
    if onnx_reference_supports(op, attrs):
        supports.add("onnx_reference")
    return Built(model=model, path=path, batch=batch, input_size=step_input_size,
                 output_size=out_size, layout=layout, vocab=vocab, state_inputs=fixed,
                 out_time_axis=out_time_axis, out_batch_axis=out_batch_axis,
                 out_drop_axes=out_drop_axes, supports=frozenset(supports),
                 node_names=tuple(f"{op.lower()}_{k}" for k in range(num_layers)))


def unsupported_op_model(tmp_path, filename: str = "unsupported.onnx") -> Path:
    """A valid model with an op the runtime does not support: LSTM -> Squeeze -> Hardmax (node
    'hardmax_head')."""
    g = _Graph(np.random.default_rng(0))
    x = g.input("X", TensorProto.FLOAT, ["seq", 1, 4])
    out = _recurrent_layer(g, "LSTM", "lstm_0", x, 4, 8, layout=0, batch_dim=1, state="input",
                           bias=True, peepholes=False, direction="forward", attrs={})
    (y,) = g.node("Squeeze", [out["Y"], g.ints("sq_axes", [1])], ["y3"], "squeeze")  # [seq,1,8]
    (y,) = g.node("Hardmax", [y], ["hardmax_out"], "hardmax_head")
    g.output(y, ["seq", 1, 8])
    path = Path(tmp_path) / filename
    onnx.save(g.model(OPSET), str(path))
    return path
