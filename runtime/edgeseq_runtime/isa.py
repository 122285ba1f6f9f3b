"""The plan's instruction set, declared once: every number the planner, the kernels and the C
runtime must agree on.

A plan's code is one int64 array (int32 in generated C): a header (``HEADER``), then instruction
records, then index tables. A record is ``[opcode, length, fields...]`` (``RECORD``); ``length``
counts the whole record, so a reader can step over a record without knowing its fields.

Each instruction is an ``Instruction``: its opcode, its fields in order (each named and typed;
a matrix or an activation function is an operand of several slots with a layout of its own),
its scratch need as a function of its fields, and its meaning. Everything else derives from it:

* the planner writes records by field name: ``PlanBuilder.emit(isa.GRU, x=..., h=..., ...)``
  (``Instruction.encode`` checks that every field is given once and in range of its type);
* every layout and group of numbers here is an ``IntEnum`` (``GRU.W`` is the offset of GRU's
  W operand in its record), which numba folds to a constant: kernels read ``code[p + GRU.W]``;
* ``edgeseq codegen`` writes the same names as C macros, ``EDGESEQ_<GROUP>_<MEMBER>``
  (``EDGESEQ_GRU_W``, ``EDGESEQ_OPCODE_GRU``, ``EDGESEQ_HEADER_START``, ...) into
  ``edgeseq_plan.h``, which the C runtime decodes with (see ``GROUPS``).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import IntEnum


@dataclass(frozen=True)
class Named:
    """One named number: a slot, a kind, a status, a field's offset."""

    name: str
    value: int
    meaning: str


@dataclass(frozen=True)
class Group:
    """Named numbers that belong together; ``enum`` is the IntEnum the kernels read them through,
    named as the group (the C prefix)."""

    name: str
    meaning: str
    members: tuple[Named, ...]

    @property
    def enum(self) -> type[IntEnum]:
        return _ENUMS[self.name]


_ENUMS: dict[str, type[IntEnum]] = {}
GROUPS: list[Group] = []  # in declaration order: what edgeseq_plan.h lists


def _group(name: str, meaning: str, members) -> type[IntEnum]:
    """Declare a group from (NAME, meaning) pairs numbered from 0, or (NAME, value, meaning)."""
    named = tuple(Named(m[0], i, m[1]) if len(m) == 2 else Named(*m) for i, m in enumerate(members))
    GROUPS.append(Group(name, meaning, named))
    _ENUMS[name] = IntEnum(name, {m.name: m.value for m in named})
    _ENUMS[name].__module__ = __name__
    return _ENUMS[name]


# -- the plan's frame ---------------------------------------------------------------------------

HEADER = _group("HEADER", "slots of the plan's header, at the start of its code", [
    ("X_OFFSET", "arena offset of the model input (one step, all streams)"),
    ("X_SIZE", "floats of input per step"),
    ("Y_OFFSET", "arena offset of the model output"),
    ("Y_SIZE", "floats of output per step"),
    ("VOCAB", "> 0 for token models: inputs are ids in [-vocab, vocab)"),
    ("START", "code position of the first instruction"),
    ("END", "one past the last instruction"),
    ("TABLES", "start of the index tables"),
    ("STATES", "the state table: offset relative to the table base"),
    ("N_STATES", "number of entries (STATE_ENTRY) in the state table"),
    ("SAVED", "arena offset of the state's copy taken when a call starts"),
    ("FAULT", "arena offset of two floats: a refused index and the rows of its table"),
    ("STAGES", "the stage table (STAGE entries, see stages): offset relative to the table base"),
    ("N_STAGES", "number of entries in the stage table, at least 1"),
])

RECORD = _group("RECORD", "an instruction record: [opcode, length, fields...]", [
    ("OPCODE", "the instruction (OPCODE)"),
    ("LENGTH", "slots of the whole record, these two included"),
    ("FIELDS", "position of the first field"),
])

STATE_ENTRY = _group("STATE_ENTRY", "an entry of the state table: an arena region that carries "
                     "recurrent state from one step to the next", [
    ("OFFSET", "arena offset of the region"),
    ("SIZE", "floats in it"),
])

STAGE = _group("STAGE", "an entry of the stage table: records that run may run for a chunk of steps "
               "before the next ones (see stages)", [
    ("START", "code position of its first record: a recurrent instruction (input projections made ahead) "
              "but in the first stage; it ends where the next one starts"),
    ("STATES", "its part of the state, STATE_ENTRY entries: offset relative to the table base"),
    ("N_STATES", "number of those entries"),
])

SLOTS = _group("SLOTS", "slots of the code's fixed-size parts", [
    ("HEADER", len(HEADER), "the header"),
    ("STATE_ENTRY", len(STATE_ENTRY), "an entry of the state table"),
    ("STAGE", len(STAGE), "an entry of the stage table"),
])
HEADER_SIZE = SLOTS.HEADER

STATUS = _group("STATUS", "what a step returns: OK, or why it was refused (the state is then as it was)", [
    ("OK", 0, "the step ran"),
    ("NOT_FINITE", 1, "an input value is NaN or Inf"),
    ("BAD_TOKEN", 2, "a token model's input is not an id of its table"),
    ("NULL_POINTER", 3, "C only: the state, input or output pointer is NULL"),
    ("BAD_INDEX", 4, "an embedding index computed in the step is outside its table"),
    ("STATE_NOT_FINITE", 5, "the step's new state holds NaN or Inf"),
    ("MISSING_FUNCTION", 6, "C only: the plan calls a libm function the model's table does not link"),
])
# The Python interpreter returns a status as kind * STATUS_SCALE + where: the flat index of the
# offending input value for input checks, the step (from the call's first) for faults mid-run.
STATUS_SCALE = 1 << 40

# -- kinds that fields take ---------------------------------------------------------------------

MATRIX_KIND = _group("MATRIX_KIND", "how a weight matrix is stored (see kernels.matvec)", [
    ("FLOAT32", "float32, input-major (n_in, ld): W transposed"),
    ("INT8", "int8, input-major, one float scale per output"),
    ("FLOAT32_BY_OUTPUT", "float32, output-major (ld, n_in), for fewer than LANES outputs"),
    ("INT8_BY_OUTPUT", "int8, output-major, one float scale per output"),
    ("FLOAT32_PANELS", "float32 in strips of PANEL outputs, one after another, each input-major (n_in, PANEL): "
                       "the Python runtime's alone (lean plans, which codegen takes, never hold it)"),
])
LANES = 8  # floats per kernel vector (one AVX register): a matrix with fewer outputs is stored output-major
PANEL = 8 * LANES  # outputs per strip of FLOAT32_PANELS, which a register tile of one row covers

ACTIVATION_KIND = _group("ACTIVATION_KIND", "the activation functions of ONNX (alpha, beta as ONNX defines them)", [
    ("RELU", "max(x, 0)"),
    ("TANH", "tanh(x)"),
    ("SIGMOID", "1 / (1 + e^-x)"),
    ("AFFINE", "alpha * x + beta"),
    ("LEAKY_RELU", "x if x >= 0 else alpha * x"),
    ("THRESHOLDED_RELU", "x if x > alpha else 0"),
    ("SCALED_TANH", "alpha * tanh(beta * x)"),
    ("HARD_SIGMOID", "clamp(alpha * x + beta, 0, 1)"),
    ("ELU", "x if x >= 0 else alpha * (e^x - 1)"),
    ("SOFTSIGN", "x / (1 + |x|)"),
    ("SOFTPLUS", "log(1 + e^x)"),
])
# ONNX name -> (kind, default alpha or None if unused, default beta or None if unused). The
# defaults are those of the standalone ONNX operators of the same name; Affine and ScaledTanh
# have no standalone operator and take alpha=1, beta=0 (the identity) and alpha=1, beta=1 (tanh).
ACTIVATIONS = {
    "Relu": (ACTIVATION_KIND.RELU, None, None),
    "Tanh": (ACTIVATION_KIND.TANH, None, None),
    "Sigmoid": (ACTIVATION_KIND.SIGMOID, None, None),
    "Affine": (ACTIVATION_KIND.AFFINE, 1.0, 0.0),
    "LeakyRelu": (ACTIVATION_KIND.LEAKY_RELU, 0.01, None),
    "ThresholdedRelu": (ACTIVATION_KIND.THRESHOLDED_RELU, 1.0, None),
    "ScaledTanh": (ACTIVATION_KIND.SCALED_TANH, 1.0, 1.0),
    "HardSigmoid": (ACTIVATION_KIND.HARD_SIGMOID, 0.2, 0.5),
    "Elu": (ACTIVATION_KIND.ELU, 1.0, None),
    "Softsign": (ACTIVATION_KIND.SOFTSIGN, None, None),
    "Softplus": (ACTIVATION_KIND.SOFTPLUS, None, None),
}

BINARY_FUNCTION = _group("BINARY_FUNCTION", "the two-operand functions of BINARY; comparisons and logic "
                         "give 1.0 or 0.0", [
    ("ADD", "a + b"), ("SUB", "a - b"), ("MUL", "a * b"), ("DIV", "a / b"),
    ("POW", "a ^ b"), ("MIN", "min(a, b)"), ("MAX", "max(a, b)"), ("PRELU", "a if a >= 0 else b * a"),
    ("EQUAL", "a == b"), ("LESS", "a < b"), ("LESS_OR_EQUAL", "a <= b"), ("GREATER", "a > b"),
    ("GREATER_OR_EQUAL", "a >= b"), ("AND", "a != 0 and b != 0"), ("OR", "a != 0 or b != 0"),
    ("XOR", "(a != 0) != (b != 0)"),
    ("MOD", "a - floor(a / b) * b, the sign of b: Mod with fmod=0"),
    ("FMOD", "a - trunc(a / b) * b, the sign of a: Mod with fmod=1"),
])

SOURCE = _group("SOURCE", "the array a BROADCAST operand reads", [
    ("ARENA", "the stream's arena"), ("WEIGHTS", "the float weights"),
])


# -- field types ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Slot:
    """What one slot holds: its meaning and the values it may take (>= minimum, or one of choices)."""

    meaning: str
    minimum: int = 0
    choices: type[IntEnum] | tuple[int, ...] | None = None
    width = 1

    def problem(self, value) -> str | None:
        """Why ``value`` cannot fill this slot, or None."""
        if not isinstance(value, numbers.Integral):
            return f"{value!r} is not an integer"
        if self.choices is not None:
            return None if int(value) in [int(c) for c in self.choices] else f"{value} is not one of {self.allowed}"
        return None if value >= self.minimum else f"{value} is below {self.minimum}"

    @property
    def allowed(self) -> str:
        if isinstance(self.choices, type):
            return ", ".join(f"{c.value} ({c.name})" for c in self.choices)
        return ", ".join(str(c) for c in self.choices)


@dataclass(frozen=True)
class Field:
    name: str             # lower case; its offset is the layout's member of the upper-case name
    type: Slot | Operand
    meaning: str = ""
    size: Callable[[dict], int] | None = None  # an ARENA field's floats from its offset, from the record's
                                               # values (Instruction.decode); None: its whole region


@dataclass(frozen=True)
class Operand:
    """Slots that travel together (a matrix, an activation function) with a layout of their own:
    a kernel reads ``code[p + GRU.W + MATRIX.KIND]``."""

    name: str
    meaning: str
    fields: tuple[Field, ...]

    def __post_init__(self):
        _group(self.name, self.meaning, _offsets(self.fields))
        OPERANDS.append(self)

    @property
    def layout(self) -> type[IntEnum]:
        return _ENUMS[self.name]

    @property
    def width(self) -> int:
        return sum(f.type.width for f in self.fields)

    def encode(self, value, where: str) -> list[int]:
        if isinstance(value, numbers.Integral) or len(value) != self.width:
            raise ValueError(f"{where}: expected a {self.name} operand of {self.width} ints, got {value!r}")
        return [*_checked(self.fields, value, where)]


OPERANDS: list[Operand] = []


def _offsets(fields) -> list[tuple[str, int, str]]:
    result, offset = [], 0
    for f in fields:
        kind = f.type.name + " operand" if isinstance(f.type, Operand) else f.type.meaning
        result.append((f.name.upper(), offset, f"{kind}: {f.meaning}" if f.meaning else kind))
        offset += f.type.width
    return result


def _checked(fields, values, where: str):
    for f, v in zip(fields, values):
        problem = f.type.problem(v)
        if problem:
            raise ValueError(f"{where}.{f.name}: {problem} ({f.type.meaning})")
        yield int(v)


ARENA = Slot("arena offset")
WEIGHTS = Slot("float weights offset")
WEIGHTS_OR_NONE = Slot("float weights offset, or -1 for none", minimum=-1)
COUNT = Slot("count")
FLAG = Slot("0 or 1", choices=(0, 1))
TABLE = Slot("index table offset, from the table base")
SCRATCH = Slot("arena offset of the instruction's scratch (reserved by PlanBuilder.emit)")

_MATRIX = Operand("MATRIX", "a constant weight matrix (see kernels.matvec)", (
    Field("kind", Slot("storage", choices=MATRIX_KIND)),
    Field("offset", Slot("offset of its first value in the float weights (FLOAT32 kinds) or the int8 "
                         "weights (INT8 kinds)")),
    Field("scales", WEIGHTS_OR_NONE, "one float scale per output for the INT8 kinds"),
))
_FUNCTION = Operand("FUNCTION", "an activation function and its parameters", (
    Field("kind", Slot("activation", choices=ACTIVATION_KIND)),
    Field("params", WEIGHTS, "alpha, beta"),
))
_BROADCAST = Operand("BROADCAST", "an operand read as v[i % period], which covers broadcasting over "
                    "leading axes", (
    Field("source", Slot("array", choices=SOURCE)),
    Field("offset", Slot("offset in that array")),
    Field("period", COUNT),
))
MATRIX, FUNCTION, BROADCAST = _MATRIX.layout, _FUNCTION.layout, _BROADCAST.layout


# -- instructions ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Instruction:
    name: str
    opcode: int
    meaning: str
    fields: tuple[Field, ...]
    scratch: Callable[[dict], int] | None = None  # floats of scratch, from the other fields
    in_c: bool = True  # whether edgeseq_rt.c runs it; codegen refuses a plan that uses one it does not

    @property
    def layout(self) -> type[IntEnum]:
        return _ENUMS[self.name]

    @property
    def arguments(self) -> int:
        """Slots of fields (the record is two longer)."""
        return sum(f.type.width for f in self.fields)

    def operands(self, layout: type[IntEnum]) -> list[int]:
        """Where this instruction's operands of ``layout`` (MATRIX, FUNCTION, BROADCAST) start
        among its fields."""
        return [self.layout[f.name.upper()] for f in self.fields
                if isinstance(f.type, Operand) and f.type.layout is layout]

    def encode(self, values: dict, reserve: Callable[[int], int]) -> list[int]:
        """The record's fields from ``values`` (every field by name but ``scratch``, which
        ``reserve(floats)`` allocates); ValueError for a missing, unknown or out-of-range field."""
        names = [f.name for f in self.fields if f.type is not SCRATCH]
        missing, unknown = [n for n in names if n not in values], [n for n in values if n not in names]
        if missing or unknown:
            raise ValueError(f"{self.name}: missing fields {missing}, unknown fields {unknown}")
        if self.scratch is not None:
            values = {**values, "scratch": reserve(self.scratch(values))}
        slots = []
        for f in self.fields:
            where = f"{self.name}.{f.name}"
            value = values[f.name]
            slots += f.type.encode(value, where) if isinstance(f.type, Operand) else [*_checked([f], [value], self.name)]
        return slots

    def decode(self, slots) -> dict:
        """The values of a record's fields, by name (an operand's as the list of its slots)."""
        values, position = {}, 0
        for f in self.fields:
            taken = [int(v) for v in slots[position:position + f.type.width]]
            values[f.name] = taken if isinstance(f.type, Operand) else taken[0]
            position += f.type.width
        return values


INSTRUCTIONS: list[Instruction] = []


def _instruction(name: str, opcode: int, meaning: str, fields, scratch=None, in_c=True) -> type[IntEnum]:
    declared = Instruction(name, opcode, meaning, tuple(Field(*f) for f in fields), scratch, in_c)
    INSTRUCTIONS.append(declared)
    return _group(name, f"fields of {name}: {meaning}", _offsets(declared.fields))


_RECURRENT = [("x", ARENA, "X, (batch, input_size)", lambda f: f["batch"] * f["input_size"]),
              ("h", ARENA, "H, (batch, hidden): initial_h on entry, Y_h on return",
               lambda f: f["batch"] * f["hidden_size"])]
_SIZES = [("input_size", COUNT), ("hidden_size", COUNT), ("batch", COUNT)]

RNN = _instruction("RNN", 1, "ONNX RNN, forward, one time step (kernels.rnn_f32)", [
    *_RECURRENT, *_SIZES,
    ("w", _MATRIX, "(input_size, hidden): Wi transposed"),
    ("r", _MATRIX, "(hidden, hidden): Ri transposed"),
    ("b", WEIGHTS, "(hidden,): Wbi + Rbi"),
    ("act_f", _FUNCTION, "f"),
    ("clip", WEIGHTS_OR_NONE, "the clip threshold"),
    ("scratch", SCRATCH, "hidden floats per stream"),
], scratch=lambda f: f["batch"] * f["hidden_size"])

GRU = _instruction("GRU", 2, "ONNX GRU, forward, one time step (kernels.gru_f32)", [
    *_RECURRENT, *_SIZES,
    ("w", _MATRIX, "(input_size, 3*hidden): W[zrh] transposed"),
    ("r", _MATRIX, "(hidden, 3*hidden): R[zrh] transposed"),
    ("bx", WEIGHTS, "(3*hidden,): Wb[zr] + Rb[zr], then Wb[h] (+ Rb[h] if not linear_before_reset)"),
    ("bh", WEIGHTS, "(hidden,): Rb[h] if linear_before_reset else zeros"),
    ("act_f", _FUNCTION, "f"),
    ("act_g", _FUNCTION, "g"),
    ("clip", WEIGHTS_OR_NONE, "the clip threshold"),
    ("linear_before_reset", FLAG),
    ("scratch", SCRATCH, "per stream: X*W and H*R of z, r, h, then r (.) H: 7*hidden floats"),
], scratch=lambda f: 7 * f["batch"] * f["hidden_size"])

LSTM = _instruction("LSTM", 3, "ONNX LSTM, forward, one time step (kernels.lstm_f32)", [
    *_RECURRENT,
    ("c", ARENA, "C, (batch, hidden): initial_c on entry, Y_c on return", lambda f: f["batch"] * f["hidden_size"]),
    *_SIZES,
    ("w", _MATRIX, "(input_size, 4*hidden): W[iofc] transposed"),
    ("r", _MATRIX, "(hidden, 4*hidden): R[iofc] transposed"),
    ("b", WEIGHTS, "(4*hidden,): Wb[iofc] + Rb[iofc]"),
    ("p", WEIGHTS_OR_NONE, "(3*hidden,): P[iof], the peepholes"),
    ("act_f", _FUNCTION, "f"),
    ("act_g", _FUNCTION, "g"),
    ("act_h", _FUNCTION, "h"),
    ("clip", WEIGHTS_OR_NONE, "the clip threshold"),
    ("input_forget", FLAG),
    ("scratch", SCRATCH, "per stream: the gates i, o, f, c: 4*hidden floats"),
], scratch=lambda f: 4 * f["batch"] * f["hidden_size"])

DENSE = _instruction("DENSE", 4, "y = x @ W + bias: Gemm and MatMul against a constant (kernels.dense_f32)", [
    ("x", ARENA, "(rows, n_in)", lambda f: f["rows"] * f["n_in"]),
    ("y", ARENA, "(rows, n_out)", lambda f: f["rows"] * f["n_out"]),
    ("rows", COUNT), ("n_in", COUNT), ("n_out", COUNT),
    ("w", _MATRIX, "(n_in, n_out), alpha and transB applied"),
    ("bias", WEIGHTS_OR_NONE, "(rows, n_out), beta and broadcasting applied"),
])

BINARY = _instruction("BINARY", 5, "c = function(a, b) over n floats (kernels.elementwise_f32)", [
    ("function", Slot("function", choices=BINARY_FUNCTION)),
    ("a", _BROADCAST), ("b", _BROADCAST),
    ("c", ARENA, "n floats"),
    ("n", COUNT),
])

ACTIVATION = _instruction("ACTIVATION", 6, "y = act(x) over n floats (kernels.elementwise_f32)", [
    ("act", _FUNCTION), ("x", ARENA), ("y", ARENA), ("n", COUNT),
])

SOFTMAX = _instruction("SOFTMAX", 7, "(Log)Softmax of x (outer, n, inner) along n (kernels.elementwise_f32)", [
    ("x", ARENA), ("y", ARENA), ("outer", COUNT),
    ("n", COUNT, "the reduced axis"), ("inner", COUNT),
    ("log", FLAG, "LogSoftmax"),
])

COPY = _instruction("COPY", 8, "y[i] = arena[table[i]]: movement that is not a view (kernels.movement)", [
    ("y", ARENA), ("n", COUNT), ("table", TABLE, "n arena offsets"),
])

EMBEDDING = _instruction("EMBEDDING", 9, "y[r] = table[ids[r]], each id checked against the table "
                         "(kernels.movement)", [
    ("ids", ARENA, "count floats holding integer ids"),
    ("y", ARENA, "(count, dim)"),
    ("count", COUNT), ("vocab", COUNT), ("dim", COUNT),
    ("table", _MATRIX, "(vocab, dim), FLOAT32 or INT8 with one scale per row"),
])

# -- the ops of convolutional front ends ----------------------------------------------------------

POSITIVE = Slot("count, at least 1", minimum=1)

def _conv_scratch(f) -> int:
    """The products of ``rows`` output positions (rows * c_out floats), then room to gather their
    patches, unless rows is 1 and every patch is a run of X: one input channel per group, one
    row of taps, no dilation, and the first and last positions' taps inside the input
    (kernels.conv_f32)."""
    in_place = (f["rows"] == 1 and f["c_in"] == f["group"] and f["k_h"] == 1 and f["dilation_w"] == 1
                and f["pad_top"] == 0 and f["pad_left"] <= 0 and (f["out_h"] - 1) * f["stride_h"] < f["in_h"]
                and (f["out_w"] - 1) * f["stride_w"] - f["pad_left"] + f["k_w"] <= f["in_w"])
    return f["rows"] * (f["c_out"] + (0 if in_place else f["c_in"] // f["group"] * f["k_h"] * f["k_w"]))


CONV = _instruction("CONV", 10, "ONNX Conv over (batch, c_in, in_h, in_w), 1-D convs with in_h = 1: "
                    "``rows`` output positions at a time, their input patches (read where they lie "
                    "in X, or gathered) times the filters of each group (kernels.conv_f32)", [
    ("x", ARENA, "X, (batch, c_in, in_h, in_w)"),
    ("y", ARENA, "Y, (batch, c_out, y_width), the output positions written out_h*out_w of each y_width"),
    ("batch", COUNT), ("c_in", COUNT), ("in_h", COUNT), ("in_w", COUNT),
    ("c_out", COUNT), ("out_h", COUNT), ("out_w", COUNT),
    ("group", POSITIVE), ("k_h", COUNT), ("k_w", COUNT),
    ("stride_h", POSITIVE), ("stride_w", POSITIVE), ("dilation_h", POSITIVE), ("dilation_w", POSITIVE),
    ("pad_top", COUNT),
    ("pad_left", Slot("taps of padding before the first input column; negative when the first output "
                      "position computed is not Conv's first (its first ones are read by nobody)", minimum=-(1 << 31))),
    ("y_width", COUNT, "floats from one output channel of Y to the next: out_h*out_w, or more when only "
                       "some output positions are computed"),
    ("w", _MATRIX, "(c_in/group * k_h * k_w, c_out): W transposed, group g's filters in columns "
                   "g*c_out/group onwards"),
    ("b", WEIGHTS_OR_NONE, "B, (c_out,)"),
    ("activate", FLAG, "1: act applies to Y (an activation that was the Conv's only reader)"),
    ("act", _FUNCTION),
    ("rows", POSITIVE, "output positions per pass: all of them (one matrix product, fast), or 1 (the "
                       "least scratch, for microcontrollers: lower_model's lean)"),
    ("scratch", SCRATCH, "the passes' products (rows, c_out), then their patches (rows, c_in/group*k_h*k_w) "
                         "where patches are gathered"),
], scratch=_conv_scratch)

UNARY_FUNCTION = _group("UNARY_FUNCTION", "the elementwise functions of UNARY (alpha, beta as the ONNX op "
                        "defines them)", [
    ("SQRT", "sqrt(x)"), ("SQUARE", "x * x: Pow with exponent 2"), ("POW", "x ^ alpha: Pow with another "
                                                                    "constant exponent"),
    ("EXP", "e^x"), ("LOG", "ln(x)"), ("ABS", "|x|"), ("NEG", "-x"), ("RECIPROCAL", "1 / x"),
    ("CLIP", "min(max(x, alpha), beta)"), ("SELU", "beta * (x if x > 0 else alpha * (e^x - 1))"),
    ("FLOOR", "floor(x)"), ("CEIL", "ceil(x)"), ("ERF", "erf(x)"), ("NOT", "1 if x == 0 else 0"),
    ("TO_FLOAT16", "x rounded to the nearest float16 (ties to even, inf beyond its range): Cast to FLOAT16"),
    ("TO_BFLOAT16", "x rounded to the nearest bfloat16 (ties to even): Cast to BFLOAT16"),
    ("SIN", "sin(x)"), ("COS", "cos(x)"), ("ROUND", "x rounded to the nearest integer, ties to even"),
    ("GELU", "x / 2 * (1 + erf(x / sqrt(2))): Gelu"),
    ("GELU_TANH", "x / 2 * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 x^3))): Gelu with approximate='tanh'"),
])

UNARY = _instruction("UNARY", 11, "y = function(x) over n floats (kernels.math_f32)", [
    ("function", Slot("function", choices=UNARY_FUNCTION)),
    ("x", ARENA), ("y", ARENA), ("n", COUNT),
    ("params", WEIGHTS, "alpha, beta"),
])

WHERE = _instruction("WHERE", 13, "y = a if condition != 0 else b over n floats (kernels.math_f32)", [
    ("condition", _BROADCAST), ("a", _BROADCAST), ("b", _BROADCAST),
    ("y", ARENA, "n floats"),
    ("n", COUNT),
])

REDUCE_FUNCTION = _group("REDUCE_FUNCTION", "the reductions of REDUCE, as ONNX's Reduce ops", [
    ("SUM", "sum"), ("MEAN", "sum / n"), ("MAX", "maximum"), ("MIN", "minimum"), ("PROD", "product"),
    ("L1", "sum of |x|"), ("L2", "sqrt of the sum of x^2"), ("SUM_SQUARE", "sum of x^2"),
    ("LOG_SUM", "log of the sum"), ("LOG_SUM_EXP", "log of the sum of e^x"),
    ("ARG_MAX", "the index of the maximum, the first of equal ones: ArgMax"),
    ("ARG_MIN", "the index of the minimum, the first of equal ones: ArgMin"),
    ("LAST_ARG_MAX", "the index of the maximum, the last of equal ones: ArgMax with select_last_index=1"),
    ("LAST_ARG_MIN", "the index of the minimum, the last of equal ones: ArgMin with select_last_index=1"),
])

REDUCE = _instruction("REDUCE", 14, "y[o, i] = reduction of x[o, :, i], x (outer, n, inner) "
                      "(kernels.reduce_f32)", [
    ("function", Slot("reduction", choices=REDUCE_FUNCTION)),
    ("x", ARENA), ("y", ARENA, "(outer, inner)"),
    ("outer", COUNT), ("n", COUNT, "the reduced axis"), ("inner", COUNT),
])

NORMALIZE = _instruction("NORMALIZE", 15, "y[r] = (x[r] - mean(x[r])) / sqrt(var(x[r]) + epsilon) for each "
                         "row of x (rows, n): the core of LayerNormalization and InstanceNormalization "
                         "(kernels.reduce_f32)", [
    ("x", ARENA), ("y", ARENA), ("rows", COUNT), ("n", COUNT),
    ("epsilon", WEIGHTS),
])

MATMUL = _instruction("MATMUL", 16, "c[i] = a[i] @ b[i] for i < count: MatMul of two run-time tensors "
                      "(kernels.matmul_f32)", [
    ("a", ARENA, "(count, m, k)"), ("b", ARENA, "(count, k, n)"), ("c", ARENA, "(count, m, n)"),
    ("count", COUNT), ("m", COUNT), ("k", COUNT), ("n", COUNT),
])

CUMSUM = _instruction("CUMSUM", 17, "y[o, j, i] = the sum of x[o, k, i] for k up to j (k before j: exclusive; "
                      "k from j to the end: reverse), x (outer, n, inner): CumSum (kernels.reduce_f32)", [
    ("x", ARENA), ("y", ARENA, "(outer, n, inner)"),
    ("outer", COUNT), ("n", COUNT, "the summed axis"), ("inner", COUNT),
    ("exclusive", FLAG), ("reverse", FLAG),
])

TOPK = _instruction("TOPK", 18, "the k largest (or smallest) of each x[o, :, i], x (outer, n, inner), in order "
                    "(of equal values the first first): TopK (kernels.reduce_f32)", [
    ("x", ARENA), ("values", ARENA, "(outer, k, inner)"), ("indices", ARENA, "(outer, k, inner): their indices in x"),
    ("outer", COUNT), ("n", COUNT, "the axis selected along"), ("inner", COUNT),
    ("k", COUNT, "at most n"), ("largest", FLAG, "1: the largest, 0: the smallest"),
])

OPCODE = _group("OPCODE", "the instructions", [(i.name, i.opcode, i.meaning) for i in INSTRUCTIONS])


def instruction(layout: type[IntEnum]) -> Instruction:
    """The declaration whose layout is ``layout`` (``isa.GRU`` -> GRU's Instruction)."""
    return next(i for i in INSTRUCTIONS if i.layout is layout)


def records(code, start: int, end: int) -> Iterator[tuple[int, int]]:
    """(position, opcode) of each instruction record in ``code[start:end]``, in order (a plan's
    step: ``records(code, code[HEADER.START], code[HEADER.END])``)."""
    position = start
    while position < end:
        yield position, int(code[position + RECORD.OPCODE])
        position += int(code[position + RECORD.LENGTH])
