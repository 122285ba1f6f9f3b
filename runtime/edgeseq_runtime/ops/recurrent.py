"""LSTM, GRU and RNN nodes: attributes and weights in ONNX layout -> kernel instructions.

This is the one place that knows how ONNX lays out the recurrent weights (gate order, the
bias split into Wb and Rb, peepholes) and how the kernels want them (transposed, biases
pre-summed where the equations allow). PyTorch's own gate order never reaches the runtime:
exporters already reorder to ONNX's.

A node runs in one of two ways, told apart by the length of its sequence within one step:

* One element per step (X [1, batch, input]): its sequence is the stream itself. Its state is
  carried from step to step, one record per step updating it in place. Only a forward node
  can do that: the other directions need the whole stream before their first output.
* More than one (X [T, batch, input], e.g. across the frequency bins of one audio frame, as
  speech enhancement models run their intra-frame GRUs): the whole sequence runs inside every
  step, in each direction the node has, from initial_h / initial_c (zeros when absent) each
  time. For each time index, in the direction's order, a COPY puts the previous H into Y's slot
  of that index and the cell's record updates the slot in place; so the instructions every
  runtime already has (the C one included) run it, and Y, Y_h and Y_c are views of Y's slots
  or one COPY. An initial_h / initial_c that is a state input no graph output feeds back
  carries the node's final state into the next step, as a streaming node's does.
"""

import functools
from dataclasses import dataclass

import numpy as np

from .. import isa
from ..graph import attribute, input_dims
from ..isa import ACTIVATIONS
from ..quantized import QuantizedWeight
from ..tensor import Tensor

GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
DEFAULT_ACTIVATIONS = {"RNN": ["Tanh"], "GRU": ["Sigmoid", "Tanh"], "LSTM": ["Sigmoid", "Tanh", "Tanh"]}
DIRECTIONS = {"forward": (False,), "reverse": (True,), "bidirectional": (False, True)}  # reversed, per direction
_BY_LOWER_NAME = {name.lower(): name for name in ACTIVATIONS}
_INSTRUCTIONS = {"RNN": isa.RNN, "GRU": isa.GRU, "LSTM": isa.LSTM}
MAX_STEPS_INSIDE = 4096  # a sequence inside one step costs two instructions per element and direction:
                         # beyond the bins of a 8192-point FFT, it is no frame's, and loading slows (~0.2 ms each)


@dataclass(frozen=True)
class Direction:
    """One direction of a node: its weights in ONNX's layout and its activations."""

    reverse: bool
    w: object                # W[d] (gates*hidden, input_size): float32 or QuantizedWeight
    r: object                # R[d] (gates*hidden, hidden)
    wb: np.ndarray           # (gates*hidden,)
    rb: np.ndarray           # (gates*hidden,)
    p: np.ndarray | None     # (3*hidden,): LSTM's peepholes
    activations: list        # (kind, alpha, beta) for f, g(, h)


@dataclass(frozen=True)
class Recurrent:
    """A recurrent node, checked, in ONNX's layout: what the emitters need and nothing to re-check."""

    op: str
    x: Tensor
    directions: tuple[Direction, ...]
    initial_h: object
    initial_c: object
    input_size: int
    hidden: int
    batch: int
    steps: int               # the sequence's length within one step
    layout: int
    clip: float | None
    linear_before_reset: int
    input_forget: int

    @property
    def streams(self) -> bool:
        """Whether the node's sequence is the stream (one forward element per step, state carried)."""
        return self.steps == 1 and [d.reverse for d in self.directions] == [False]

    @property
    def state_shape(self) -> tuple[int, ...]:
        dirs = len(self.directions)
        return (dirs, self.batch, self.hidden) if self.layout == 0 else (self.batch, dirs, self.hidden)

    @property
    def y_shape(self) -> tuple[int, ...]:
        dirs = len(self.directions)
        return ((self.steps, dirs, self.batch, self.hidden) if self.layout == 0
                else (self.batch, self.steps, dirs, self.hidden))


def lower_recurrent(ctx, node, inputs):
    cell = _checked(ctx, node, inputs)
    return _streaming(ctx, node, cell) if cell.streams else _whole_sequence(ctx, node, cell)


def _checked(ctx, node, inputs) -> Recurrent:
    """The node's inputs and attributes as a Recurrent; a ModelError for anything the runtime
    cannot run as ONNX defines it."""
    op = node.op_type
    gates = GATES[op]
    inputs = inputs + [None] * (8 - len(inputs))
    x, w, r, b, seq_lens, initial_h = inputs[:6]
    initial_c, p = (inputs[6], inputs[7]) if op == "LSTM" else (None, None)

    direction = text(attribute(node, "direction", b"forward"))
    if direction not in DIRECTIONS:
        ctx.fail(node, f"direction='{direction}' is not one of ONNX's: {', '.join(DIRECTIONS)}")
    dirs = len(DIRECTIONS[direction])
    for name, value in (("W", w), ("R", r), ("B", b), ("P", p)):
        if isinstance(value, Tensor):
            ctx.fail(node, f"{name} is computed at run time; the runtime needs constant weights")
    if w is None or r is None:
        ctx.fail(node, "W and R are required")
    if isinstance(seq_lens, Tensor):
        ctx.fail(node, "sequence_lens is computed at run time; a stream has no sequence length")
    if not isinstance(x, Tensor):
        ctx.fail(node, "X does not depend on the model input")

    if len(w.shape) != 3 or len(r.shape) != 3 or w.shape[0] != dirs or r.shape[0] != dirs:
        ctx.fail(node, f"W and R must have shape [{dirs}, {gates}*hidden, ...] (direction='{direction}'); "
                       f"got {list(w.shape)} and {list(r.shape)}")
    hidden = r.shape[2]
    n_in = w.shape[2]
    declared = attribute(node, "hidden_size", hidden)
    if declared != hidden or r.shape[1] != gates * hidden or w.shape[1] != gates * hidden:
        ctx.fail(node, f"hidden_size={declared} does not match W {list(w.shape)} and R {list(r.shape)}")
    if b is None:
        b = np.zeros((dirs, 2 * gates * hidden), np.float32)
    b = np.asarray(b, np.float32)
    if b.shape != (dirs, 2 * gates * hidden):
        ctx.fail(node, f"B has shape {list(b.shape)}, expected [{dirs}, {2 * gates * hidden}]")

    layout = attribute(node, "layout", 0)
    if layout not in (0, 1):
        ctx.fail(node, f"layout={layout} is not 0 or 1")
    if len(x.shape) != 3 or x.shape[2] != n_in:
        ctx.fail(node, f"X has shape {list(x.shape)} in one step, expected "
                       f"{'[seq, batch' if layout == 0 else '[batch, seq'}, {n_in}] (layout={layout})")
    steps, batch = (x.shape[0], x.shape[1]) if layout == 0 else (x.shape[1], x.shape[0])
    if steps == 1 and direction != "forward":
        ctx.fail(node, f"direction='{direction}' over a sequence of one element per step: that sequence is the "
                       f"stream, which it needs whole before the first output, so it cannot stream; export a "
                       f"forward (unidirectional) model (a sequence inside one step runs in any direction)")
    if steps > MAX_STEPS_INSIDE:
        ctx.fail(node, f"X runs a sequence of {steps} inside one step; at most {MAX_STEPS_INSIDE} are supported "
                       f"(each element is an instruction); export it with the sequence as the stream's time axis")
    if seq_lens is not None:
        _check_sequence_lens(ctx, node, np.asarray(seq_lens), None if steps == 1 else steps)
    clip = attribute(node, "clip", None)
    if clip is not None and not clip > 0:
        ctx.fail(node, f"clip={clip} must be positive")
    if p is not None:
        p = np.asarray(p, np.float32)
        if p.shape != (dirs, 3 * hidden):
            ctx.fail(node, f"P has shape {list(p.shape)}, expected [{dirs}, {3 * hidden}]")
    activations = _activations(ctx, node, op, dirs)
    per_direction = len(DEFAULT_ACTIVATIONS[op])
    directions = tuple(
        Direction(reverse, _direction(w, d), _direction(r, d), b[d, :gates * hidden], b[d, gates * hidden:],
                  None if p is None else p[d], activations[d * per_direction:(d + 1) * per_direction])
        for d, reverse in enumerate(DIRECTIONS[direction]))
    return Recurrent(op, x, directions, initial_h, initial_c, n_in, hidden, batch, steps, layout, clip,
                     int(bool(attribute(node, "linear_before_reset", 0))),
                     int(bool(attribute(node, "input_forget", 0))))


def _record_constants(ctx, cell: Recurrent, direction: Direction) -> dict:
    """The fields of one direction's records that hold no arena offset, their constants stored
    once for all its records: W and R transposed (one row per input), the biases as the
    kernels add them, the activations' parameters, the clip threshold, the flags."""
    builder = ctx.builder
    acts = [[kind, builder.constant([alpha, beta])] for kind, alpha, beta in direction.activations]
    fields = dict(input_size=cell.input_size, hidden_size=cell.hidden, batch=cell.batch,
                  # W[d] and R[d] are (gates*hidden, n) with one row per output: store them transposed.
                  w=builder.matrix(direction.w, out_axis=0, panels=not ctx.lean),
                  r=builder.matrix(direction.r, out_axis=0, panels=not ctx.lean),
                  clip=builder.constant([cell.clip]) if cell.clip is not None else -1,
                  **{f"act_{name}": act for name, act in zip("fgh", acts)})
    if cell.op == "GRU":
        fields.update(_gru_biases(ctx, cell, direction), linear_before_reset=cell.linear_before_reset)
    else:
        fields["b"] = builder.constant(direction.wb + direction.rb)
    if cell.op == "LSTM":
        fields.update(p=builder.constant(direction.p) if direction.p is not None else -1,
                      input_forget=cell.input_forget)
    return fields


def _gru_biases(ctx, cell: Recurrent, direction: Direction) -> dict:
    """GRU's biases: Rb[zr] joins Wb[zr] (always summed); Rb[h] joins Wb[h] too, except with
    linear_before_reset, where it is added to H*(Rh^T) before the product with rt (Bh)."""
    hidden = cell.hidden
    bx = direction.wb.copy()
    bx[:2 * hidden] += direction.rb[:2 * hidden]
    bh = np.zeros(hidden, np.float32)
    if cell.linear_before_reset:
        bh[:] = direction.rb[2 * hidden:]
    else:
        bx[2 * hidden:] += direction.rb[2 * hidden:]
    return {"bx": ctx.builder.constant(bx), "bh": ctx.builder.constant(bh)}


def _streaming(ctx, node, cell: Recurrent) -> list:
    """One record per step, its state (H, and C for an LSTM) carried in place to the next step."""
    fields = _record_constants(ctx, cell, cell.directions[0])
    h = ctx.state_region(node, cell.initial_h, cell.state_shape, "initial_h")
    outputs = [Tensor(cell.y_shape, h.offset), h]
    if cell.op == "LSTM":
        c = ctx.state_region(node, cell.initial_c, cell.state_shape, "initial_c")
        fields["c"] = c.offset
        outputs.append(c)
    ctx.builder.emit(_INSTRUCTIONS[cell.op], x=cell.x.offset, h=h.offset, **fields)
    return outputs


def _whole_sequence(ctx, node, cell: Recurrent) -> list:
    """The whole sequence in every direction, each step: see the module docstring."""
    steps, dirs, batch, hidden = cell.steps, len(cell.directions), cell.batch, cell.hidden
    builder = ctx.builder
    x = ctx.from_addresses(_layout_0(cell.x.addresses(), cell.layout))  # (steps, batch, input)
    slots = ctx.new_tensor((steps, dirs, batch, hidden)).addresses()    # Y in layout 0
    initial_h = _initial_state(ctx, node, cell, cell.initial_h, "initial_h")
    c = ctx.new_tensor((dirs, batch, hidden)) if cell.op == "LSTM" else None
    initial_c = _initial_state(ctx, node, cell, cell.initial_c, "initial_c") if c is not None else None
    scratch = functools.cache(builder.alloc)  # the records run one after another: one scratch for all
    y_h = []
    for d, direction in enumerate(cell.directions):
        fields = _record_constants(ctx, cell, direction)
        if c is not None:
            fields["c"] = int(c.addresses()[d, 0, 0])
            builder.emit(isa.COPY, y=fields["c"], n=batch * hidden, table=builder.table(initial_c[d]))
        previous = initial_h[d]
        for t in reversed(range(steps)) if direction.reverse else range(steps):
            h = int(slots[t, d, 0, 0])
            builder.emit(isa.COPY, y=h, n=batch * hidden, table=builder.table(previous))
            builder.emit(_INSTRUCTIONS[cell.op], reserve=scratch, x=x.offset + t * batch * cell.input_size, h=h,
                         **fields)
            previous = slots[t, d]
        y_h.append(previous)
    y_h = np.stack(y_h)
    _carry(ctx, node, cell, cell.initial_h, y_h, "initial_h")
    wanted = [k < len(node.output) and bool(node.output[k]) for k in range(3)]
    outputs = [ctx.from_addresses(_in_layout(slots, cell.layout)) if wanted[0] else None,
               ctx.from_addresses(_in_layout(y_h, cell.layout)) if wanted[1] else None]
    if c is not None:
        _carry(ctx, node, cell, cell.initial_c, c.addresses(), "initial_c")
        outputs.append(ctx.from_addresses(_in_layout(c.addresses(), cell.layout)) if wanted[2] else None)
    return outputs


def _layout_0(addresses: np.ndarray, layout: int) -> np.ndarray:
    """X [batch, seq, ...] or a state [batch, num_directions, hidden] of layout 1 in layout 0's order."""
    return addresses.swapaxes(0, 1) if layout == 1 else addresses


def _in_layout(addresses: np.ndarray, layout: int) -> np.ndarray:
    """Y [seq, num_directions, batch, hidden] or a state [num_directions, batch, hidden] of layout 0
    in ``layout``'s order: Y [batch, seq, num_directions, hidden], state [batch, num_directions, hidden]."""
    if layout == 0:
        return addresses
    return addresses.transpose(2, 0, 1, 3) if addresses.ndim == 4 else addresses.swapaxes(0, 1)


def _initial_state(ctx, node, cell: Recurrent, value, suffix: str) -> np.ndarray:
    """The arena addresses, (num_directions, batch, hidden), that a whole-sequence node's
    initial_h / initial_c is read from at the start of every step: the tensor's own, or a
    region holding the constant (zeros when absent)."""
    shape = cell.state_shape
    if isinstance(value, Tensor):
        if value.size != np.prod(shape):
            ctx.fail(node, f"{suffix} has shape {list(value.shape)}, expected {list(shape)}")
        return _layout_0(value.addresses().reshape(shape), cell.layout)
    try:
        constant = np.broadcast_to(np.zeros(shape, np.float32) if value is None else np.asarray(value, np.float32),
                                   shape)
    except ValueError:
        ctx.fail(node, f"{suffix} has shape {list(np.shape(value))}, expected {list(shape)}")
    return _layout_0(ctx.resident(constant).addresses(), cell.layout)


def _carry(ctx, node, cell: Recurrent, value, final: np.ndarray, suffix: str) -> None:
    """Copy a whole-sequence node's final state (``final``, layout 0) into its initial_h /
    initial_c when that is a state input no graph output feeds back: the next step starts there."""
    if not isinstance(value, Tensor):
        return
    name = ctx.state_input_holding(value)
    if name is None or name in ctx.state_outputs:
        return
    region = ctx.state_region(node, value, cell.state_shape, suffix)
    ctx.builder.emit(isa.COPY, y=region.offset, n=region.size, table=ctx.builder.table(_in_layout(final, cell.layout)))


def _check_sequence_lens(ctx, node, lengths, steps_in_step):
    """A constant sequence_lens is honoured when it covers the whole sequence (it then changes
    nothing): the ``steps_in_step`` of a sequence inside one step, else the sequence the model
    input declares. A shorter one ends some sequences early, leaving the state alone for the
    steps after: a stream has no end to count from, so such a graph is refused, as is one whose
    sequence length is not declared (nothing to check the lengths against)."""
    declared = steps_in_step
    if declared is None and ctx.input_time_axis is not None:
        declared = input_dims(ctx.graph.inputs[ctx.input_name])[ctx.input_time_axis]
    values = sorted({int(v) for v in lengths.ravel()})
    if declared is None or values != [declared]:
        length = f"the {declared}-step sequence X declares" if declared else "a sequence of undeclared length"
        ctx.fail(node, f"sequence_lens {values} does not cover {length}: the steps after it would leave the "
                       f"state unchanged and Y zero, which the runtime does not mirror; export without "
                       f"sequence_lens")


def text(value) -> str:
    """A string attribute as text; bytes that are not UTF-8 show as replacement characters
    (and then match no known name, so the error names them)."""
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def _direction(weight, index: int):
    """weight[index]: one direction's weights, keeping int8 weights int8."""
    if isinstance(weight, QuantizedWeight):
        return weight.direction(index)
    return np.asarray(weight, np.float32)[index]


def _activations(ctx, node, op, dirs):
    """[(kind, alpha, beta)] for f, g(, h) of each direction in turn: names from
    ``activations``, alpha and beta from ``activation_alpha`` / ``activation_beta``, consumed in
    order by the activations that take them (as ONNX Runtime does), the operators' defaults
    otherwise."""
    names = [text(n) for n in attribute(node, "activations", [])]
    names = names or DEFAULT_ACTIVATIONS[op] * dirs
    if len(names) != len(DEFAULT_ACTIVATIONS[op]) * dirs:
        ctx.fail(node, f"{op} takes {len(DEFAULT_ACTIVATIONS[op])} activations for each of its {dirs} "
                       f"direction(s), got {names}")
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
