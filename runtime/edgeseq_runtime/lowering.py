"""Lowering: an ONNX graph -> a plan for one time step of ``batch`` streams.

Every tensor gets a concrete shape (time axis 1, batch axis ``batch``). Values computable at
load time (initializers, Constant, shape arithmetic, anything whose inputs are all constant)
are folded by ``folding`` (ONNX's reference evaluator, within a size and work budget). What
depends on the input or the state becomes a ``Tensor``: a contiguous region of the arena. Ops
that only move data (Reshape, Transpose, Slice, Concat, ...) are evaluated on the regions'
addresses: a contiguous result is a view at no run-time cost, anything else one indexed copy.
The rest become kernel instructions. An If whose condition folds to a constant is replaced by
the branch it takes, whose nodes are lowered like the graph's own.

Graph inputs fall into three kinds: constants (fixed by the caller, folded like initializers),
state (carried from one step to the next: the initial_h / initial_c of a recurrent node,
updated in place by it, or an input paired with the graph output that carries its next value,
copied back at the end of each step) and the one step input left over.
"""

import hashlib
import json
import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import onnx

from . import isa
from .errors import ModelError
from .folding import MAX_SUBGRAPH_DEPTH, Folder
from .graph import FLOAT_TYPES, INTEGER_TYPES, Graph, elem_type, input_dims, type_name
from .load_options import LoadOptions
from .ops import CONSTANT_HANDLERS, HANDLERS
from .plan import Plan, PlanBuilder
from .tensor import StateSlot, Tensor

MAX_INPUT_ELEMENTS = 1 << 24  # a larger graph input is not a sensor reading: refuse early
_WEIGHT_SLOTS = {1: "W", 2: "R", 3: "B", 4: "sequence_lens", 7: "P"}  # a recurrent node's constant inputs
# Output names that carry the next value of state input <in>, as exporters spell them.
STATE_OUTPUT_NAMES = ("{}_out", "{}n", "{}N", "{}_next", "next_{}")
STATE_OPTION = "pass state={'INPUT': 'OUTPUT'} (CLI: --state INPUT=OUTPUT)"


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
    context: int = 0  # values of each stream's input kept from the previous step (LoadOptions.context)
    stream_shape: tuple[int, ...] | None = None  # the shape of one stream's step input that step accepts too
    state_outputs: dict[str, str] = field(default_factory=dict)  # {state input: output with its next value}
    branches: dict[str, str] = field(default_factory=dict)  # {If's first output: the branch it took}
    fingerprint: str = ""  # sha256 of what defines the numbers of a stream (computation_fingerprint)


class Lowering:
    """Walks the graph once; op handlers (``ops``) call back into it to allocate and emit."""

    def __init__(self, graph: Graph, batch: int, options: LoadOptions, lean: bool = False):
        self.graph = graph
        self.batch = batch
        self.options = options
        self.lean = lean  # the least arena rather than the fastest plan (lower_model's lean)
        self._depth = 0  # If branches being lowered, nested
        self.branches: dict[str, str] = {}  # {If's first output: "then_branch" or "else_branch"}
        self.builder = PlanBuilder()
        self.values: dict[str, object] = dict(graph.initializers)
        self.folder = Folder(graph.opset, graph.fail, graph.describe)
        self.states: list[StateSlot] = []
        self._input_regions: dict[str, Tensor] = {}
        self.state_outputs: dict[str, str] = {}  # {state input: the graph output fed back into it}
        self.input_name = None
        self.token_input = False
        self.vocab = 0  # set by the embedding that the token ids index
        self.input_time_axis = None
        self.guessed_input = None  # how the step input's symbolic dims were filled, without input_shape
        self._claimed: list[tuple[int, int, str]] = []
        self._absorbed: set[str] = set()  # outputs of nodes another handler computed already
        self._unread: Counter = Counter()  # {value: reads of it still to come: nodes not lowered yet, the step's end}
        self._exposed: set[str] = set()   # values read from outside the graph walk

    # -- helpers for op handlers ------------------------------------------------------------

    def fail(self, node, reason: str):
        self.folder.fail(node, reason)  # inside an If's branch, the refusal says which

    def new_tensor(self, shape, init=None) -> Tensor:
        shape = tuple(int(d) for d in shape)
        return Tensor(shape, self.builder.alloc(math.prod(shape), init))

    def from_addresses(self, addresses: np.ndarray) -> Tensor:
        """A tensor whose elements are the arena elements at ``addresses``: a view when they
        are contiguous, otherwise a new region filled by one indexed copy per step."""
        flat = addresses.ravel()
        if flat.size and np.array_equal(flat, flat[0] + np.arange(flat.size)) \
                and self.builder.one_region(int(flat[0]), flat.size):
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
        users = self.uses(name)
        return users[0] if len(users) == 1 else None

    def uses(self, name: str) -> list:
        """The nodes that read ``name``; empty when it is also read from outside (the model
        output or a state fed back), since then not every reader is a node."""
        return [] if name in self._exposed else list(self.graph.consumers.get(name, []))

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
            if self.state_input_holding(value) is None:
                self.fail(node, f"{suffix} is computed inside the graph; a streaming model takes its "
                                f"state as a graph input, an initializer, or not at all")
            start, end = value.offset, value.offset + value.size
            for other_start, other_end, other in self._claimed:
                if start < other_end and other_start < end:
                    self.fail(node, f"{suffix} shares state with {other}: each recurrent node needs its own")
            self._claimed.append((start, end, self.graph.describe(node)))
            self._keep_for_later_readers(node, start, end)
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

    def _keep_for_later_readers(self, node, start: int, end: int) -> None:
        """The node about to update arena[start:end] in place holds the state the step started
        with: nodes lowered after it that read a value within it (the state input, a view of it)
        must still read that state. Copy the values they read aside, before the node runs, and
        point them at the copy. A value that holds more than this state (h of every layer, of
        which each layer's node takes its own part) keeps reading the arena: a later read of it
        sees the states the nodes before it have updated."""
        own = Counter(self.graph.reads(node))
        later = {name: v for name, v in self.values.items() if isinstance(v, Tensor)
                 and start <= v.offset and v.offset + v.size <= end and self._unread[name] > own[name]}
        if not later:
            return
        low = min(v.offset for v in later.values())
        high = max(v.offset + v.size for v in later.values())
        aside = self.new_tensor((high - low,))
        self.builder.emit(isa.COPY, y=aside.offset, n=aside.size, table=self.builder.table(np.arange(low, high)))
        for name, v in later.items():
            self.values[name] = Tensor(v.shape, aside.offset + v.offset - low)

    def state_input_holding(self, value: Tensor) -> str | None:
        """The state input whose region holds all of ``value``, or None (it is computed in the step)."""
        return next((name for name, r in self._input_regions.items() if name != self.input_name
                     and r.offset <= value.offset and value.offset + value.size <= r.offset + r.size), None)

    # -- the walk -------------------------------------------------------------------------

    def lower(self) -> LoweredModel:
        graph = self.graph
        x_name, x_shape, output, feedback, step_x = self._bind_inputs()
        self.state_outputs = feedback
        self._exposed = {output, *feedback.values()}
        nodes = graph.needed_nodes([output, *feedback.values()])
        self._unread.update([output, *feedback.values()])  # read when the step ends
        self._unread.update(name for node in nodes for name in graph.reads(node))
        self._lower_nodes(nodes)
        y = self.values.get(output)
        if not isinstance(y, Tensor):
            graph.fail(None, f"output '{output}' does not depend on the input or the state")
        self._feed_back(feedback)
        if self.token_input and not self.vocab:
            graph.fail(None, f"integer input '{x_name}' must index an embedding table (Gather on an initializer)")
        plan = self.builder.build(step_x.offset, step_x.size, y.offset, y.size, self.vocab, self.states)
        for slot in self.states:
            slot.offset = int(self.builder.placed(slot.offset))
        return LoweredModel(plan, x_name, x_shape, self.vocab, output, y.shape, self.states, self.input_time_axis,
                            context=self.options.context, state_outputs=dict(feedback),
                            stream_shape=None if self.options.context else self.options.input_shape,
                            branches=self.branches)

    def _lower_nodes(self, nodes) -> None:
        for node in nodes:
            if node.output and node.output[0] in self._absorbed:
                self._lowered(node)
                continue
            inputs = [self._value(node, name) if name else None for name in node.input]
            if node.op_type == "If":
                outputs = self._lower_if(node, inputs[0])
            elif node.op_type not in CONSTANT_HANDLERS and not any(isinstance(v, Tensor) for v in inputs):
                outputs = self.evaluate(node, {n: v for n, v in zip(node.input, inputs) if n})
            else:
                handler = HANDLERS.get(node.op_type)
                if handler is None:
                    self.fail(node, f"op {node.op_type} is not supported (supported: {', '.join(sorted(HANDLERS))})")
                outputs = handler(self, node, inputs)
            for name, value in zip(node.output, outputs):
                if name:
                    self.values[name] = value
            self._lowered(node)

    def _lowered(self, node) -> None:
        self._unread.subtract(self.graph.reads(node))

    def _lower_if(self, node, cond) -> list:
        """The outputs of the branch an If takes: its condition must be known at load time
        (computed from constants and shapes); the branch's nodes are lowered in place, reading
        the enclosing graph's values by name."""
        if isinstance(cond, Tensor):
            self.fail(node, "its condition depends on the step input or the state, so the branch it takes "
                            "changes from step to step; fix the inputs the condition depends on with "
                            "constants={NAME: VALUE} (CLI: --constant NAME=VALUE)")
        if cond is None or np.size(cond) != 1:
            self.fail(node, f"cond must be one boolean, not {cond!r}")
        name = "then_branch" if bool(np.ravel(cond)[0]) else "else_branch"
        if node.output:
            self.branches[node.output[0]] = name
        outer = [read for read in self.graph.reads(node)[1:] if read in self.values]
        if not any(isinstance(self.values[read], Tensor) for read in outer):
            return self.evaluate(node, {node.input[0]: cond})  # all constant: folded whole
        if self._depth >= MAX_SUBGRAPH_DEPTH:
            self.fail(node, f"If branches nested more than {MAX_SUBGRAPH_DEPTH} deep are not lowered")
        branch = next((a.g for a in node.attribute if a.name == name and a.type == onnx.AttributeProto.GRAPH), None)
        if branch is None:
            self.fail(node, f"has no {name}")
        if len(branch.output) != len(node.output):
            self.fail(node, f"its {name} has {len(branch.output)} outputs, the If {len(node.output)}")
        for tensor in branch.initializer:
            try:
                self.values[tensor.name] = onnx.numpy_helper.to_array(tensor)
            except Exception as e:  # noqa: BLE001 - onnx raises several kinds on a bad tensor
                self.fail(node, f"initializer '{tensor.name}' of its {name} cannot be read ({e})")
        # While its branch is lowered, the If's reads are its branch's nodes' (each counted off
        # as it is lowered; see _keep_for_later_readers); the walk counts the If's off after it.
        reads, results = self.graph.reads(node), [output.name for output in branch.output]
        self._unread.subtract(reads)
        self._unread.update(read for inner in branch.node for read in self.graph.reads(inner))
        self._unread.update(results)  # read as the If's outputs once the branch is lowered
        self._depth += 1
        try:
            with self.folder.inside(node, name):
                for inner in branch.node:
                    self.graph.check_domain(inner, self.fail)
                self._lower_nodes(branch.node)
        finally:
            self._depth -= 1
            self._unread.update(reads)
            self._unread.subtract(results)
        return [self._value(node, name) for name in results]

    def _feed_back(self, feedback: dict[str, str]) -> None:
        """End each step by copying each state output into its state input, for graphs whose
        recurrence is written out with ordinary ops (e.g. an unrolled RNN cell). Nothing to copy
        when the output is the input's own region (a recurrent node updated it in place); an
        output that reads another state's region (two states swapped, say) is first copied
        aside, so that no copy reads a region an earlier one wrote."""
        moves = []
        for state_name, out_name in feedback.items():
            region, value = self._input_regions[state_name], self.values.get(out_name)
            if not isinstance(value, Tensor) or value.size != region.size:
                shape = list(value.shape) if isinstance(value, Tensor) else "a constant"
                self.graph.fail(None, f"state output '{out_name}' ({shape}) does not match state input "
                                      f"'{state_name}' {list(region.shape)}")
            sources = value.addresses().ravel()
            if not np.array_equal(sources, region.addresses().ravel()):
                moves.append((region, sources))
        written = np.zeros(max((max(r.offset + r.size, int(s.max(initial=0)) + 1) for r, s in moves), default=0), bool)
        for region, _ in moves:
            written[region.offset:region.offset + region.size] = True
        staged = []
        for region, sources in moves:
            if written[sources].any():
                aside = self.new_tensor((sources.size,))
                self.builder.emit(isa.COPY, y=aside.offset, n=aside.size, table=self.builder.table(sources))
                sources = aside.addresses()
            staged.append((region, sources))
        for region, sources in staged:
            self.builder.emit(isa.COPY, y=region.offset, n=region.size, table=self.builder.table(sources))

    def _value(self, node, name):
        if name not in self.values:
            self.fail(node, f"input '{name}' is not produced by any node")
        return self.values[name]

    def evaluate(self, node, feeds: dict):
        """Run one node on constant values (``feeds``: {input name: value}); every fold of the
        load goes through its one ``Folder`` and so spends from one budget."""
        return self.folder.fold(node, feeds, self.values)

    def _bind_inputs(self):
        """Give the step input and every state input an arena region of concrete shape.

        Returns (step input name, its one-step shape as in the graph, the model output,
        {state input: output carrying its next value}, the region a step's values are written to).
        """
        graph = self.graph
        recurrent_states = graph.state_inputs()
        x_name, output, pairs = self._sort_inputs(recurrent_states)
        x_info = graph.inputs[x_name]
        kind = elem_type(x_info)
        time_axis, batch_axis = graph.input_axes(x_name)
        self.input_time_axis = time_axis
        x_shape, batch_axis = self._step_shape(x_name, input_dims(x_info), time_axis, batch_axis)
        self.token_input = kind in INTEGER_TYPES
        if not self.token_input and kind not in FLOAT_TYPES:
            graph.fail(None, f"input '{x_name}' has {type_name(kind)}; "
                             f"expected a float type, or integers for token ids")
        self._input_regions[x_name] = self.values[x_name] = self.new_tensor(x_shape)
        step_x = self._context_input(x_name, x_shape, batch_axis) if self.options.context else self.values[x_name]

        for name in dict.fromkeys([*recurrent_states, *pairs]):
            dims = input_dims(graph.inputs[name])
            node = recurrent_states.get(name)
            layout = next((a.i for a in node.attribute if a.name == "layout"), 0) if node is not None else 0
            # [layers, batch, hidden], or [batch, layers, hidden] with layout=1, or [batch, hidden]
            batch_axis = 0 if layout or len(dims) < 3 else 1
            if sum(d is None for d in dims) == 1:
                batch_axis = None  # its one dynamic axis is the batch axis
            elif None not in dims and dims and dims[batch_axis] not in (1, self.batch):
                batch_axis = None  # fixed dims, none of them one stream's or the batch's: no batch axis
            shape, _ = self._concrete(name, dims, None, batch_axis)
            init = graph.initializers.get(name)
            if init is not None and init.size != math.prod(shape):
                graph.fail(None, f"state input '{name}' has a default of shape {list(init.shape)}, expected {list(shape)}")
            region = self.new_tensor(shape, init)
            self._input_regions[name] = self.values[name] = region
            self.states.append(StateSlot(name, shape, region.offset))
        return x_name, x_shape, output, pairs, step_x

    def _sort_inputs(self, recurrent_states) -> tuple[str, str, dict[str, str]]:
        """(the step input, the model output, {state input: output carrying its next value}).

        State is what feeds a recurrent node's initial_h / initial_c, and every input paired
        with an output (see ``_pair_states``); the step input is the first input left, the
        others must pair by shape or are refused, saying how to pair or fix them."""
        graph = self.graph
        pairs = self._pair_states()
        free = [n for n in graph.data_inputs() if n not in recurrent_states and n not in pairs]
        named = [n for n in pairs if n not in self.options.state and n not in recurrent_states]
        if not free and named:  # e.g. audio -> audio_out: the first input paired by name is the step input
            free = [named[0]]
            del pairs[named[0]]
        if not free:
            graph.fail(None, "the model has no input besides its recurrent state")
        x_name, unpaired = free[0], free[1:]
        self.input_name = x_name
        output = self._model_output(pairs)
        pairs.update(self._pair_by_shape(unpaired, [o for o in graph.outputs if o != output and o not in
                                                    pairs.values() and not graph.is_state_output(o)]))
        for node in graph.recurrent_nodes():  # weights fed at run time: say which, and what is needed
            weights = [f"{slot} ('{node.input[index]}')" for index, slot in _WEIGHT_SLOTS.items()
                       if index < len(node.input) and node.input[index] in unpaired]
            if weights:
                graph.fail(node, f"{', '.join(weights)} {'is a graph input' if len(weights) == 1 else 'are graph inputs'}; "
                                 f"the runtime needs the weights in the file, as initializers")
        unpaired = [n for n in unpaired if n not in pairs]
        if unpaired:
            graph.fail(None, f"cannot tell which graph output carries the next value of input(s) {unpaired} "
                             f"(the step input is '{x_name}'); {STATE_OPTION}, or fix an input that is no "
                             f"state with constants={{NAME: VALUE}} (CLI: --constant NAME=VALUE)")
        return x_name, output, pairs

    def _pair_states(self) -> dict[str, str]:
        """{state input: output} from ``state=``, then by name (``<in>_out``, ``<in>n``, ``<in>N``,
        ``<in>_next``, ``next_<in>``): an input with exactly one such output."""
        graph, explicit = self.graph, self.options.state
        inputs, outputs = graph.data_inputs(), set(graph.outputs)
        for name, out in explicit.items():
            if name not in inputs:
                graph.fail(None, f"state={{'{name}': '{out}'}}: '{name}' is not a graph input that takes a value "
                                 f"at run time (those are {inputs})")
            if out not in outputs:
                graph.fail(None, f"state={{'{name}': '{out}'}}: '{out}' is not a graph output "
                                 f"(those are {graph.outputs})")
        pairs = dict(explicit)
        for name in inputs:
            if name in pairs:
                continue
            named = [o for o in (f.format(name) for f in STATE_OUTPUT_NAMES) if o in outputs and o not in pairs.values()]
            if len(named) == 1:
                pairs[name] = named[0]
            elif len(named) > 1:
                graph.fail(None, f"outputs {named} could each carry the next value of state input '{name}'; "
                                 f"{STATE_OPTION}")
        return pairs

    def _model_output(self, pairs) -> str:
        """The first graph output that carries no state (or the first output)."""
        graph = self.graph
        if not graph.outputs:
            graph.fail(None, "the graph has no outputs")
        return next((o for o in graph.outputs if o not in pairs.values() and not graph.is_state_output(o)),
                    graph.outputs[0])

    def _pair_by_shape(self, inputs, outputs) -> dict[str, str]:
        """Pairs of an input and an output whose declared shapes match each other's and no
        other's (symbolic dims match anything)."""
        def matches(a, b):
            a, b = input_dims(self.graph.inputs[a]), input_dims(self.graph.output_infos[b])
            return len(a) == len(b) and all(x is None or y is None or x == y for x, y in zip(a, b))
        pairs = {}
        for name in inputs:
            candidates = [o for o in outputs if matches(name, o)]
            if len(candidates) == 1 and [i for i in inputs if matches(i, candidates[0])] == [name]:
                pairs[name] = candidates[0]
        return pairs

    def _step_shape(self, name, dims, time_axis, batch_axis) -> tuple[tuple[int, ...], int | None]:
        """The step input's one-step shape and its batch axis: from ``input_shape`` (one
        stream's shape: every axis but the batch axis) where given, else from the graph."""
        given = self.options.input_shape
        if given is None:
            shape, batch_axis = self._concrete(name, dims, time_axis, batch_axis)
            if any(d is None and axis not in (time_axis, batch_axis) for axis, d in enumerate(dims)):
                declared = [d.dim_param or d.dim_value or "?" for d in self.graph.inputs[name].type.tensor_type.shape.dim]
                self.guessed_input = f"input '{name}' {declared} was taken as {list(shape)}"
            return shape, batch_axis
        if len(given) == len(dims) and self.batch == 1:
            shape, batch_axis = list(given), None  # a graph without a batch axis
        elif len(given) == len(dims) - 1:
            if batch_axis is None:  # the first symbolic axis, else the first axis of extent 1
                batch_axis = next((a for a, d in enumerate(dims) if d is None),
                                  next((a for a, d in enumerate(dims) if d == 1), 0))
            shape = list(given)
            shape.insert(batch_axis, self.batch)
        else:
            self.graph.fail(None, f"input_shape {list(given)} does not fit input '{name}' of rank {len(dims)}: "
                                  f"give one stream's shape, every axis but the batch axis ({len(dims) - 1} dims)")
        for axis, (declared, size) in enumerate(zip(dims, shape)):
            if declared is not None and declared != size:
                what = "the batch axis" if axis == batch_axis else f"axis {axis}"
                self.graph.fail(None, f"input_shape {list(given)} gives input '{name}' the shape {shape}, but the "
                                      f"graph fixes {what} to {declared}")
        if math.prod(shape) > MAX_INPUT_ELEMENTS:
            self.graph.fail(None, f"input '{name}' of shape {shape} is too large for a streaming model")
        return tuple(shape), batch_axis

    def _stream_addresses(self, region: Tensor, batch_axis) -> np.ndarray:
        """(batch, values of one stream) arena addresses of ``region``, each stream's in order."""
        addresses = region.addresses()
        if self.batch > 1:
            addresses = np.moveaxis(addresses, batch_axis, 0)
        return addresses.reshape(self.batch, -1)

    def _context_input(self, name, shape, batch_axis) -> Tensor:
        """With ``context=N``: each step's graph input is the last N values of the previous
        step's (kept in a state slot, zeros at first) followed by the new values a caller
        passes. Returns the region the new values are written to."""
        context, graph_input = self.options.context, self.values[name]
        per_stream = graph_input.size // self.batch
        if self.token_input:
            self.graph.fail(None, f"context={context}: input '{name}' holds token ids, not samples")
        if context >= per_stream:
            self.graph.fail(None, f"context={context}: input '{name}' takes {per_stream} values per stream "
                                  f"and step; the context must leave room for at least one new value")
        streams = self._stream_addresses(graph_input, batch_axis)
        kept = self.new_tensor((self.batch, context))
        new = self.new_tensor((self.batch, per_stream - context))
        sources = np.empty(graph_input.size, np.int64)
        sources[streams[:, :context] - graph_input.offset] = kept.addresses()
        sources[streams[:, context:] - graph_input.offset] = new.addresses()
        self.builder.emit(isa.COPY, y=graph_input.offset, n=graph_input.size, table=self.builder.table(sources))
        # the next step's context at once: nothing reads this step's after the COPY above, and
        # the input need not stay live to the step's end for it (its memory is shared after)
        self.builder.emit(isa.COPY, y=kept.offset, n=kept.size,
                          table=self.builder.table(streams[:, per_stream - context:]))
        self.states.append(StateSlot(f"{name}.context", kept.shape, kept.offset))
        return new

    def _concrete(self, name, dims, time_axis, batch_axis) -> tuple[tuple[int, ...], int | None]:
        """Fill an input's dims: batch axis = batch, time axis = 1, other dynamic dims = 1.
        Returns the shape and the batch axis it took."""
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
                                          f"load it with batch=1, or give input_shape= (CLI: --input-shape)")
                shape.append(1)
            else:
                shape.append(d)
        if self.batch != 1 and batch_axis is None:
            self.graph.fail(None, f"input '{name}' {list(dims)} has no batch axis; load it with batch=1")
        if math.prod(shape) > MAX_INPUT_ELEMENTS:
            self.graph.fail(None, f"input '{name}' of shape {shape} is too large for a streaming model")
        return tuple(shape), batch_axis


def lower(model: onnx.ModelProto, path: str, batch: int, options: LoadOptions | None = None,
          lean: bool = False) -> LoweredModel:
    options = options or LoadOptions()
    fingerprint = computation_fingerprint(model, batch, options)
    graph = Graph(model, path)
    _fix_constants(graph, options.constants)
    lowering = Lowering(graph, batch, options, lean)
    try:
        lowered = lowering.lower()
    except OverflowError as e:
        raise ModelError(f"{path}: {e}") from None
    except ModelError as e:
        if lowering.guessed_input is None:
            raise
        # a step of one sample, say, fails far from the cause: a Conv wider than its input
        raise ModelError(f"{e} ({lowering.guessed_input}; give one stream's shape with input_shape= "
                         f"(CLI: --input-shape))") from None
    lowered.fingerprint = fingerprint
    return lowered


def computation_fingerprint(model: onnx.ModelProto, batch: int, options: LoadOptions) -> str:
    """sha256 of what defines the numbers a stream computes: the model as read (graph and
    weights), the load options and the batch. Not the plan, which a later runtime may lay out
    anew: a state saved under one version of edgeseq loads under the next."""
    digest = hashlib.sha256(model.SerializeToString(deterministic=True))
    digest.update(json.dumps({"batch": batch, **options.fields()}, sort_keys=True).encode())
    return digest.hexdigest()


def _fix_constants(graph: Graph, constants: dict) -> None:
    """Make each fixed input an initializer of the input's element type and declared shape:
    the lowering then folds it and everything computed from it."""
    inputs = graph.data_inputs()
    for name, value in constants.items():
        if name not in inputs:
            graph.fail(None, f"constants={{'{name}': ...}}: '{name}' is not a graph input that takes a value "
                             f"at run time (those are {inputs})")
        info = graph.inputs[name]
        try:
            dtype = onnx.helper.tensor_dtype_to_np_dtype(elem_type(info))
        except (KeyError, ValueError):  # a type numpy has none for
            graph.fail(None, f"constants: input '{name}' has {type_name(elem_type(info))}, which cannot be fixed")
        if dtype.kind in "iub" and not np.array_equal(value, np.round(value)):
            graph.fail(None, f"constants: input '{name}' takes {dtype} values, given {value.tolist()}")
        dims = input_dims(info)
        if None in dims:
            shape = value.shape
        elif value.size == math.prod(dims):
            shape = tuple(dims)
        else:
            graph.fail(None, f"constants: input '{name}' has shape {dims}, given {value.size} value(s)")
        graph.initializers[name] = np.asarray(value, dtype).reshape(shape)
