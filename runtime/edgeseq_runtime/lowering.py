"""Lowering: an ONNX graph -> a plan for one time step of ``batch`` streams.

Every tensor gets a concrete shape (time axis 1, batch axis ``batch``). Values computable at
load time (initializers, Constant, shape arithmetic, anything whose inputs are all constant)
are folded by ``folding`` (ONNX's reference evaluator, within a size and work budget). What
depends on the input or the state becomes a ``Tensor``: a contiguous region of the arena. Ops
that only move data (Reshape, Transpose, Slice, Concat, ...) are evaluated on the regions'
addresses: a contiguous result is a view at no run-time cost, anything else one indexed copy.
The rest become kernel instructions.
"""

import math
from dataclasses import dataclass, field

import numpy as np
import onnx

from . import isa
from .errors import ModelError
from .folding import Folder
from .graph import FLOAT_TYPES, INTEGER_TYPES, Graph, elem_type, input_dims, type_name
from .ops import CONSTANT_HANDLERS, HANDLERS
from .plan import Plan, PlanBuilder
from .tensor import StateSlot, Tensor

MAX_INPUT_ELEMENTS = 1 << 24  # a larger graph input is not a sensor reading: refuse early
_WEIGHT_SLOTS = {1: "W", 2: "R", 3: "B", 4: "sequence_lens", 7: "P"}  # a recurrent node's constant inputs


@dataclass
class LoweredModel:
    plan: Plan
    input_name: str
    input_shape: tuple[int, ...]     # one step, as in the graph (time axis 1)
    vocab: int                       # > 0 for token models
    output_name: str
    output_shape: tuple[int, ...]
    states: list[StateSlot] = field(default_factory=list)
    input_time_axis: int | None = None  # the axis of the input that a whole sequence runs along


class Lowering:
    """Walks the graph once; op handlers (``ops``) call back into it to allocate and emit."""

    def __init__(self, graph: Graph, batch: int):
        self.graph = graph
        self.batch = batch
        self.builder = PlanBuilder()
        self.values: dict[str, object] = dict(graph.initializers)
        self.folder = Folder(graph.opset, graph.fail, graph.describe)
        self.states: list[StateSlot] = []
        self._input_regions: dict[str, Tensor] = {}
        self.input_name = None
        self.token_input = False
        self.vocab = 0  # set by the embedding that the token ids index
        self.input_time_axis = None
        self._claimed: list[tuple[int, int, str]] = []
        self._absorbed: set[str] = set()  # outputs of nodes another handler computed already
        self._exposed: set[str] = set()   # values read from outside the graph walk

    # -- helpers for op handlers ------------------------------------------------------------

    def fail(self, node, reason: str):
        self.graph.fail(node, reason)

    def new_tensor(self, shape, init=None) -> Tensor:
        shape = tuple(int(d) for d in shape)
        return Tensor(shape, self.builder.alloc(math.prod(shape), init))

    def from_addresses(self, addresses: np.ndarray) -> Tensor:
        """A tensor whose elements are the arena elements at ``addresses``: a view when they
        are contiguous, otherwise a new region filled by one indexed copy per step."""
        flat = addresses.ravel()
        if flat.size and np.array_equal(flat, flat[0] + np.arange(flat.size)):
            return Tensor(tuple(addresses.shape), int(flat[0]))
        out = self.new_tensor(addresses.shape)
        self.builder.emit(isa.COPY, y=out.offset, n=flat.size, table=self.builder.table(flat))
        return out

    def absorb(self, node, value) -> None:
        """Record that ``node``'s one output is ``value``, computed by the handler of an
        earlier node (fusion); the walk then skips ``node``."""
        self.values[node.output[0]] = value
        self._absorbed.add(node.output[0])

    def only_use(self, name: str):
        """The single node that reads ``name``, or None if several do, or it is also read
        from outside (the model output or a state fed back)."""
        users = self.graph.consumers.get(name, [])
        return users[0] if len(users) == 1 and name not in self._exposed else None

    def resident(self, value) -> Tensor:
        """A tensor for ``value``: itself if it is one, else a constant copied into the arena."""
        if isinstance(value, Tensor):
            return value
        array = np.asarray(value)
        return self.new_tensor(array.shape, init=array.astype(np.float32))

    def state_region(self, node, value, shape, suffix: str) -> Tensor:
        """The arena region a recurrent node keeps one of its states in.

        ``value`` is the node's initial_h / initial_c input: a view of a state graph input
        (the state then lives in that input's region), a constant (a private state starting
        from it) or None (a private state starting from zeros).
        """
        shape = tuple(shape)
        if isinstance(value, Tensor):
            if value.size != math.prod(shape):
                self.fail(node, f"{suffix} has shape {list(value.shape)}, expected {list(shape)}")
            inside = [r for name, r in self._input_regions.items() if name != self.input_name
                      and r.offset <= value.offset and value.offset + value.size <= r.offset + r.size]
            if not inside:
                self.fail(node, f"{suffix} is computed inside the graph; a streaming model takes its "
                                f"state as a graph input, an initializer, or not at all")
            start, end = value.offset, value.offset + value.size
            for other_start, other_end, other in self._claimed:
                if start < other_end and other_start < end:
                    self.fail(node, f"{suffix} shares state with {other}: each recurrent node needs its own")
            self._claimed.append((start, end, self.graph.describe(node)))
            return Tensor(shape, value.offset)
        label = node.name or node.output[0]
        init = None
        if value is not None:
            try:
                init = np.broadcast_to(np.asarray(value, np.float32), shape)
            except ValueError:
                self.fail(node, f"{suffix} has shape {list(np.shape(value))}, expected {list(shape)}")
        region = self.new_tensor(shape, init)
        self.states.append(StateSlot(f"{label}.{suffix}", shape, region.offset))
        return region

    # -- the walk -------------------------------------------------------------------------

    def lower(self) -> LoweredModel:
        graph = self.graph
        x_name, x_shape, feedback = self._bind_inputs()
        output = graph.model_output()
        self._exposed = {output, *feedback.values()}
        for node in graph.needed_nodes([output, *feedback.values()]):
            if node.output and node.output[0] in self._absorbed:
                continue
            inputs = [self._value(node, name) if name else None for name in node.input]
            if node.op_type not in CONSTANT_HANDLERS and not any(isinstance(v, Tensor) for v in inputs):
                outputs = self.evaluate(node, {n: v for n, v in zip(node.input, inputs) if n})
            else:
                handler = HANDLERS.get(node.op_type)
                if handler is None:
                    self.fail(node, f"op {node.op_type} is not supported (supported: {', '.join(sorted(HANDLERS))})")
                outputs = handler(self, node, inputs)
            for name, value in zip(node.output, outputs):
                if name:
                    self.values[name] = value
        y = self.values.get(output)
        if not isinstance(y, Tensor):
            graph.fail(None, f"output '{output}' does not depend on the input or the state")
        for state_name, out_name in feedback.items():
            self._feed_back(state_name, out_name)
        if self.token_input and not self.vocab:
            graph.fail(None, f"integer input '{x_name}' must index an embedding table (Gather on an initializer)")
        x = self._input_regions[x_name]
        plan = self.builder.build(x.offset, x.size, y.offset, y.size, self.vocab, self.states)
        return LoweredModel(plan, x_name, x_shape, self.vocab, output, y.shape, self.states, self.input_time_axis)

    def _feed_back(self, state_name: str, out_name: str) -> None:
        """End each step by copying a state output into its state input, for graphs whose
        recurrence is written out with ordinary ops (e.g. an unrolled RNN cell)."""
        region, value = self._input_regions[state_name], self.values.get(out_name)
        if not isinstance(value, Tensor) or value.size != region.size:
            shape = list(value.shape) if isinstance(value, Tensor) else "a constant"
            self.graph.fail(None, f"state output '{out_name}' ({shape}) does not match state input "
                                  f"'{state_name}' {list(region.shape)}")
        self.builder.emit(isa.COPY, y=region.offset, n=region.size, table=self.builder.table(value.addresses()))

    def _value(self, node, name):
        if name not in self.values:
            self.fail(node, f"input '{name}' is not produced by any node")
        return self.values[name]

    def evaluate(self, node, feeds: dict):
        """Run one node on constant values (``feeds``: {input name: value}); every fold of the
        load goes through its one ``Folder`` and so spends from one budget."""
        return self.folder.fold(node, feeds, self.values)

    def _bind_inputs(self):
        """Give the model input and every state input an arena region of concrete shape.

        The model input is the first graph input that is not recurrent state. State inputs
        are those feeding the initial_h / initial_c of a recurrent node (updated in place by
        it) and, for graphs that write the recurrence out with ordinary ops, the remaining
        inputs, each paired in order with a graph output that carries its next value.
        Returns (input name, its one-step shape, {state input: state output}).
        """
        graph = self.graph
        recurrent_states = graph.state_inputs()
        data = [n for n in graph.data_inputs() if n not in recurrent_states]
        if not data:
            graph.fail(None, "the model has no input besides its recurrent state")
        x_name, feedback_inputs = data[0], data[1:]
        self.input_name = x_name
        output = graph.model_output()
        feedback_outputs = [o for o in graph.outputs if o != output and not graph.is_state_output(o)]
        for node in graph.recurrent_nodes():  # weights fed at run time: say which, and what is needed
            weights = [f"{slot} ('{node.input[index]}')" for index, slot in _WEIGHT_SLOTS.items()
                       if index < len(node.input) and node.input[index] in feedback_inputs]
            if weights:
                graph.fail(node, f"{', '.join(weights)} {'is a graph input' if len(weights) == 1 else 'are graph inputs'}; "
                                 f"the runtime needs the weights in the file, as initializers")
        if len(feedback_outputs) < len(feedback_inputs):
            graph.fail(None, f"inputs {feedback_inputs} are neither the model input nor the state of an "
                             f"LSTM/GRU/RNN node, and no graph outputs carry their next values")
        feedback = dict(zip(feedback_inputs, feedback_outputs))

        x_info = graph.inputs[x_name]
        kind = elem_type(x_info)
        time_axis, batch_axis = graph.input_axes(x_name)
        self.input_time_axis = time_axis
        x_shape = self._concrete(x_name, input_dims(x_info), time_axis, batch_axis)
        self.token_input = kind in INTEGER_TYPES
        if not self.token_input and kind not in FLOAT_TYPES:
            graph.fail(None, f"input '{x_name}' has {type_name(kind)}; "
                             f"expected a float type, or integers for token ids")
        self._input_regions[x_name] = self.values[x_name] = self.new_tensor(x_shape)

        for name in [*recurrent_states, *feedback_inputs]:
            dims = input_dims(graph.inputs[name])
            node = recurrent_states.get(name)
            layout = next((a.i for a in node.attribute if a.name == "layout"), 0) if node is not None else 0
            # [layers, batch, hidden], or [batch, layers, hidden] with layout=1, or [batch, hidden]
            batch_axis = 0 if layout or len(dims) < 3 else 1
            if sum(d is None for d in dims) == 1:
                batch_axis = None  # its one dynamic axis is the batch axis
            shape = self._concrete(name, dims, None, batch_axis)
            init = graph.initializers.get(name)
            if init is not None and init.size != math.prod(shape):
                graph.fail(None, f"state input '{name}' has a default of shape {list(init.shape)}, expected {list(shape)}")
            region = self.new_tensor(shape, init)
            self._input_regions[name] = self.values[name] = region
            self.states.append(StateSlot(name, shape, region.offset))
        return x_name, x_shape, feedback

    def _concrete(self, name, dims, time_axis, batch_axis) -> tuple[int, ...]:
        """Fill an input's dims: batch axis = batch, time axis = 1, other dynamic dims = 1."""
        dynamic = [axis for axis, d in enumerate(dims) if d is None and axis != time_axis]
        if batch_axis is None and len(dynamic) == 1:
            batch_axis = dynamic[0]  # the one dynamic axis besides time must be the batch axis
        shape = []
        for axis, d in enumerate(dims):
            if axis == batch_axis:
                if d is not None and d != self.batch:
                    self.graph.fail(None, f"input '{name}' has a fixed batch size of {d} (axis {axis}); "
                                          f"load it with batch={d} or export it with a dynamic batch axis")
                shape.append(self.batch)
            elif axis == time_axis:
                shape.append(1)
            elif d is None:
                if self.batch != 1 and batch_axis is None:
                    self.graph.fail(None, f"cannot tell which axis of input '{name}' is the batch axis; "
                                          f"load it with batch=1")
                shape.append(1)
            else:
                shape.append(d)
        if math.prod(shape) > MAX_INPUT_ELEMENTS:
            self.graph.fail(None, f"input '{name}' of shape {shape} is too large for a streaming model")
        return tuple(shape)


def lower(model: onnx.ModelProto, path: str, batch: int) -> LoweredModel:
    graph = Graph(model, path)
    try:
        return Lowering(graph, batch).lower()
    except OverflowError as e:
        raise ModelError(f"{path}: {e}") from None
