"""LSTM, GRU and RNN nodes: attributes and weights in ONNX layout -> one kernel instruction.

This is the one place that knows how ONNX lays out the recurrent weights (gate order, the
bias split into Wb and Rb, peepholes) and how the kernels want them (transposed, biases
pre-summed where the equations allow). PyTorch's own gate order never reaches the runtime:
exporters already reorder to ONNX's.
"""

from dataclasses import dataclass

import numpy as np

from .. import isa
from ..graph import attribute, input_dims
from ..isa import ACTIVATIONS
from ..quantized import QuantizedWeight
from ..tensor import Tensor

GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
DEFAULT_ACTIVATIONS = {"RNN": ["Tanh"], "GRU": ["Sigmoid", "Tanh"], "LSTM": ["Sigmoid", "Tanh", "Tanh"]}
_BY_LOWER_NAME = {name.lower(): name for name in ACTIVATIONS}


@dataclass(frozen=True)
class Recurrent:
    """A recurrent node, checked, in ONNX's layout: what the emitters need and nothing to re-check."""

    op: str
    x: Tensor
    w: object                # W[0] (gates*hidden, input_size): float32 or QuantizedWeight
    r: object                # R[0] (gates*hidden, hidden)
    wb: np.ndarray           # (gates*hidden,)
    rb: np.ndarray           # (gates*hidden,)
    p: np.ndarray | None     # (3*hidden,): LSTM's peepholes
    initial_h: object
    initial_c: object
    input_size: int
    hidden: int
    batch: int
    layout: int
    activations: list        # (kind, alpha, beta) for f, g(, h)
    clip: float | None

    @property
    def state_shape(self) -> tuple[int, ...]:
        return (1, self.batch, self.hidden) if self.layout == 0 else (self.batch, 1, self.hidden)

    @property
    def y_shape(self) -> tuple[int, ...]:
        return (1, 1, self.batch, self.hidden) if self.layout == 0 else (self.batch, 1, 1, self.hidden)


def lower_recurrent(ctx, node, inputs):
    return _EMITTERS[node.op_type](ctx, node, _checked(ctx, node, inputs))


def _checked(ctx, node, inputs) -> Recurrent:
    """The node's inputs and attributes as a Recurrent; a ModelError for anything the runtime
    cannot run as ONNX defines it."""
    op = node.op_type
    gates = GATES[op]
    inputs = inputs + [None] * (8 - len(inputs))
    x, w, r, b, seq_lens, initial_h = inputs[:6]
    initial_c, p = (inputs[6], inputs[7]) if op == "LSTM" else (None, None)

    direction = text(attribute(node, "direction", b"forward"))
    if direction != "forward":
        ctx.fail(node, f"direction='{direction}' needs the whole sequence before the first output, "
                       f"so it cannot stream; export a forward (unidirectional) model")
    for name, value in (("W", w), ("R", r), ("B", b), ("P", p)):
        if isinstance(value, Tensor):
            ctx.fail(node, f"{name} is computed at run time; the runtime needs constant weights")
    if w is None or r is None:
        ctx.fail(node, "W and R are required")
    if isinstance(seq_lens, Tensor):
        ctx.fail(node, "sequence_lens is computed at run time; a stream has no sequence length")
    if seq_lens is not None:
        _check_sequence_lens(ctx, node, np.asarray(seq_lens))
    if not isinstance(x, Tensor):
        ctx.fail(node, "X does not depend on the model input")

    if len(w.shape) != 3 or len(r.shape) != 3 or w.shape[0] != 1 or r.shape[0] != 1:
        ctx.fail(node, f"W and R must have shape [1, {gates}*hidden, ...]; got {list(w.shape)} and {list(r.shape)}")
    hidden = r.shape[2]
    n_in = w.shape[2]
    declared = attribute(node, "hidden_size", hidden)
    if declared != hidden or r.shape[1] != gates * hidden or w.shape[1] != gates * hidden:
        ctx.fail(node, f"hidden_size={declared} does not match W {list(w.shape)} and R {list(r.shape)}")
    if b is None:
        b = np.zeros((1, 2 * gates * hidden), np.float32)
    b = np.asarray(b, np.float32)
    if b.shape != (1, 2 * gates * hidden):
        ctx.fail(node, f"B has shape {list(b.shape)}, expected [1, {2 * gates * hidden}]")

    layout = attribute(node, "layout", 0)
    if layout not in (0, 1):
        ctx.fail(node, f"layout={layout} is not 0 or 1")
    batch = x.size // n_in if n_in else 0
    expected = (1, batch, n_in) if layout == 0 else (batch, 1, n_in)
    if x.shape != expected:
        ctx.fail(node, f"X has shape {list(x.shape)} for one step, expected {list(expected)} "
                       f"(time axis 1, layout={layout}); a stream runs one step at a time")
    activations = _activations(ctx, node, op)
    clip = attribute(node, "clip", None)
    if clip is not None and not clip > 0:
        ctx.fail(node, f"clip={clip} must be positive")
    if p is not None:
        p = np.asarray(p, np.float32)
        if p.shape != (1, 3 * hidden):
            ctx.fail(node, f"P has shape {list(p.shape)}, expected [1, {3 * hidden}]")
        p = p[0]
    return Recurrent(op, x, _first(w), _first(r), b[0, :gates * hidden], b[0, gates * hidden:], p,
                     initial_h, initial_c, n_in, hidden, batch, layout, activations, clip)


def _stored(ctx, node, cell: Recurrent) -> dict:
    """The fields every recurrent instruction shares, their constants stored: W and R transposed
    (one row per input), the activations' parameters, the clip threshold, the state H."""
    builder = ctx.builder
    acts = [[kind, builder.constant([alpha, beta])] for kind, alpha, beta in cell.activations]
    clip_off = builder.constant([cell.clip]) if cell.clip is not None else -1
    # W[0] and R[0] are (gates*hidden, n) with one row per output: store them transposed.
    wt, rt = builder.matrix(cell.w, out_axis=0), builder.matrix(cell.r, out_axis=0)
    h = ctx.state_region(node, cell.initial_h, cell.state_shape, "initial_h")
    return dict(x=cell.x.offset, h=h.offset, input_size=cell.input_size, hidden_size=cell.hidden,
                batch=cell.batch, w=wt, r=rt, clip=clip_off, **{f"act_{name}": act for name, act in zip("fgh", acts)})


def _emit_rnn(ctx, node, cell: Recurrent):
    fields = _stored(ctx, node, cell)
    ctx.builder.emit(isa.RNN, **fields, b=ctx.builder.constant(cell.wb + cell.rb))
    return [Tensor(cell.y_shape, fields["h"]), Tensor(cell.state_shape, fields["h"])]


def _emit_gru(ctx, node, cell: Recurrent):
    """GRU's biases: Rb[zr] joins Wb[zr] (always summed); Rb[h] joins Wb[h] too, except with
    linear_before_reset, where it is added to H*(Rh^T) before the product with rt (Bh)."""
    fields = _stored(ctx, node, cell)
    linear_before_reset = int(bool(attribute(node, "linear_before_reset", 0)))
    hidden = cell.hidden
    bx = cell.wb.copy()
    bx[:2 * hidden] += cell.rb[:2 * hidden]
    bh = np.zeros(hidden, np.float32)
    if linear_before_reset:
        bh[:] = cell.rb[2 * hidden:]
    else:
        bx[2 * hidden:] += cell.rb[2 * hidden:]
    ctx.builder.emit(isa.GRU, **fields, bx=ctx.builder.constant(bx), bh=ctx.builder.constant(bh),
                     linear_before_reset=linear_before_reset)
    return [Tensor(cell.y_shape, fields["h"]), Tensor(cell.state_shape, fields["h"])]


def _emit_lstm(ctx, node, cell: Recurrent):
    fields = _stored(ctx, node, cell)
    c = ctx.state_region(node, cell.initial_c, cell.state_shape, "initial_c")
    peepholes = ctx.builder.constant(cell.p) if cell.p is not None else -1
    ctx.builder.emit(isa.LSTM, **fields, c=c.offset, p=peepholes, b=ctx.builder.constant(cell.wb + cell.rb),
                     input_forget=int(bool(attribute(node, "input_forget", 0))))
    return [Tensor(cell.y_shape, fields["h"]), Tensor(cell.state_shape, fields["h"]), Tensor(cell.state_shape, c.offset)]


_EMITTERS = {"RNN": _emit_rnn, "GRU": _emit_gru, "LSTM": _emit_lstm}


def _check_sequence_lens(ctx, node, lengths):
    """A constant sequence_lens is honoured when it covers the whole declared sequence (it then
    changes nothing). A shorter one ends some sequences early, leaving the state alone for the
    steps after: a stream has no end to count from, so such a graph is refused, as is one whose
    sequence length is not declared (nothing to check the lengths against)."""
    declared = None
    if ctx.input_time_axis is not None:
        declared = input_dims(ctx.graph.inputs[ctx.input_name])[ctx.input_time_axis]
    values = sorted({int(v) for v in lengths.ravel()})
    if declared is None or values != [declared]:
        length = f"the {declared}-step sequence X declares" if declared else "a sequence of undeclared length"
        ctx.fail(node, f"sequence_lens {values} does not cover {length}: the steps after it would leave the "
                       f"state unchanged, which a stream cannot mirror; export without sequence_lens")


def text(value) -> str:
    """A string attribute as text; bytes that are not UTF-8 show as replacement characters
    (and then match no known name, so the error names them)."""
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def _first(weight):
    """weight[0]: drop the num_directions axis, keeping int8 weights int8."""
    return weight.first() if isinstance(weight, QuantizedWeight) else np.asarray(weight, np.float32)[0]


def _activations(ctx, node, op):
    """[(kind, alpha, beta)] for f, g(, h): names from ``activations``, alpha and beta
    from ``activation_alpha`` / ``activation_beta``, consumed in order by the activations that
    take them (as ONNX Runtime does), the operators' defaults otherwise."""
    names = [text(n) for n in attribute(node, "activations", [])]
    names = names or DEFAULT_ACTIVATIONS[op]
    if len(names) != len(DEFAULT_ACTIVATIONS[op]):
        ctx.fail(node, f"{op} takes {len(DEFAULT_ACTIVATIONS[op])} activations for one direction, got {names}")
    alphas = list(attribute(node, "activation_alpha", []))
    betas = list(attribute(node, "activation_beta", []))
    result = []
    for name in names:
        canonical = _BY_LOWER_NAME.get(name.lower())
        if canonical is None:
            ctx.fail(node, f"activation '{name}' is not one of ONNX's: {', '.join(ACTIVATIONS)}")
        kind, default_alpha, default_beta = ACTIVATIONS[canonical]
        alpha = alphas.pop(0) if default_alpha is not None and alphas else (default_alpha or 0.0)
        beta = betas.pop(0) if default_beta is not None and betas else (default_beta or 0.0)
        result.append((kind, alpha, beta))
    return result


HANDLERS = {op: lower_recurrent for op in GATES}
