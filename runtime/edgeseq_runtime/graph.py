"""Reading an ONNX file into a checked graph, and the structural questions the lowering asks.

Everything here works on names and node structure only; values are the lowering's business.
"""

import functools
import math
import os

import numpy as np
import onnx
from onnx import external_data_helper, numpy_helper

from .errors import ModelError, first_line
from .untrusted_file import UnreadableFile, read_regular

RECURRENT_OPS = ("LSTM", "GRU", "RNN")
# Ops that only move or relabel data: state and outputs are traced through them.
GLUE_OPS = frozenset({
    "Identity", "Dropout", "Cast", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose",
    "Slice", "Concat", "Split", "Gather", "Expand", "Tile",
})
# Elementwise ops keep the axes of their input (the binary ones when the other side is a
# constant that broadcasts into it).
ELEMENTWISE_UNARY = ("Relu", "Tanh", "Sigmoid", "LeakyRelu", "HardSigmoid", "Elu", "Softsign", "Softplus")
ELEMENTWISE_BINARY = ("Add", "Sub", "Mul", "Div")
INTEGER_TYPES = frozenset({
    onnx.TensorProto.INT8, onnx.TensorProto.INT16, onnx.TensorProto.INT32, onnx.TensorProto.INT64,
    onnx.TensorProto.UINT8, onnx.TensorProto.UINT16, onnx.TensorProto.UINT32, onnx.TensorProto.UINT64,
})
FLOAT_TYPES = frozenset({
    onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16,
})


MAX_MODEL_BYTES = 1 << 29  # the file and its external data: a streaming model holds a few MB of
                           # weights, and a load keeps them in memory twice (bytes, then arrays)
MAX_PROTO_FIELDS = 1 << 18  # fields of all messages in the file, counted before parsing: an empty
                            # repeated entry takes 2 bytes on disk but hundreds in memory once parsed
                            # (10 MB of them took 2 GB); a graph of 10^4 nodes has ~10^5 fields
MAX_PROTO_DEPTH = 100  # messages nested deeper are refused (protobuf's own default limit)
# Element types stored two to a byte.
PACKED_4BIT = frozenset(getattr(onnx.TensorProto, name) for name in ("INT4", "UINT4", "FLOAT4E2M1")
                        if hasattr(onnx.TensorProto, name))


def read_model(path) -> onnx.ModelProto:
    """Load and check an ONNX file (external data included); ModelError on anything malformed.

    Every size is checked before the memory it implies is taken: the file's, the number of
    protobuf fields it holds, and each external tensor's bytes against its dims."""
    path = os.fspath(path)
    try:
        data = read_regular(path, MAX_MODEL_BYTES, "a model file may have")
    except FileNotFoundError:
        raise ModelError(f"{path}: no such file") from None
    except UnreadableFile as e:
        raise ModelError(f"{path}: {e}") from None
    try:
        if _count_fields(memoryview(data), onnx.ModelProto.DESCRIPTOR, MAX_PROTO_FIELDS, 0) < 0:
            raise ModelError(f"{path}: holds more than {MAX_PROTO_FIELDS} protobuf fields; "
                             f"not a streaming model")
        model = onnx.load_model_from_string(data)
    except ModelError:
        raise
    except Exception as e:  # protobuf raises its own DecodeError, the field walk IndexError/ValueError
        raise ModelError(f"{path}: not a readable ONNX model ({first_line(e)})") from None
    _load_external_data(model, path, len(data))
    if not model.graph.node:
        raise ModelError(f"{path}: not an ONNX model with a graph (no nodes found)")
    try:
        onnx.checker.check_model(model)
    except Exception as e:  # ValidationError, or a C++ failure surfaced as another exception
        raise ModelError(f"{path}: invalid ONNX model: {first_line(e)}") from None
    return model


def _count_fields(data: memoryview, descriptor, budget: int, depth: int) -> int:
    """Walk one message's wire format, descending into its message fields, counting every field
    against ``budget``; what is left of it (negative once exceeded: the walk stops there)."""
    if depth > MAX_PROTO_DEPTH:
        raise ValueError(f"messages nested more than {MAX_PROTO_DEPTH} deep")
    pos, end = 0, len(data)
    while pos < end:
        tag, pos = _varint(data, pos)
        budget -= 1
        if budget < 0:
            return budget
        wire = tag & 7
        if wire == 0:
            pos = _varint(data, pos)[1]
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            length, pos = _varint(data, pos)
            field = descriptor.fields_by_number.get(tag >> 3)
            if field is not None and field.message_type is not None:
                budget = _count_fields(data[pos:pos + length], field.message_type, budget, depth + 1)
                if budget < 0:
                    return budget
            pos += length
        else:
            raise ValueError(f"protobuf wire type {wire} at byte {pos}")
    if pos > end:
        raise ValueError("a field runs past the end of its message")
    return budget


def _varint(data: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]  # IndexError past the end: a truncated file
        value |= (byte & 0x7F) << shift
        pos += 1
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError(f"a varint longer than 10 bytes at byte {pos}")


def _load_external_data(model: onnx.ModelProto, path: str, size: int) -> None:
    """Read each external tensor's bytes, after checking that they are exactly dims x itemsize
    and that all of them fit in MAX_MODEL_BYTES. onnx (>= 1.21) keeps the reads inside the
    model's folder (no absolute paths, ``..``, links or non-regular files) and within the file."""
    folder = os.path.dirname(os.path.abspath(path))
    total = size
    for tensor in _tensors(model.graph):
        if not external_data_helper.uses_external_data(tensor):
            continue
        where = f"{path}: initializer '{tensor.name}'"
        expected = _tensor_bytes(tensor, where)
        try:
            info = external_data_helper.ExternalDataInfo(tensor)
        except ValueError as e:
            raise ModelError(f"{where}: bad external data entry ({first_line(e)})") from None
        if info.length is not None and info.length != expected:
            raise ModelError(f"{where}: external data of {info.length} bytes, but its dims "
                             f"{list(tensor.dims)} take {expected}")
        total += expected
        if total > MAX_MODEL_BYTES:
            raise ModelError(f"{where}: the model's tensors take more than {MAX_MODEL_BYTES} bytes")
        if info.length is None:  # else onnx reads to the end of the file, however large
            tensor.external_data.add(key="length", value=str(expected))
        try:
            external_data_helper.load_external_data_for_tensor(tensor, folder)
        except Exception as e:  # ValidationError (path), OSError, ValueError (offset/length)
            raise ModelError(f"{where}: external data cannot be read ({first_line(e)})") from None


def _tensor_bytes(tensor: onnx.TensorProto, where: str) -> int:
    if any(d < 0 for d in tensor.dims):
        raise ModelError(f"{where}: negative dims {list(tensor.dims)}")
    count = math.prod(tensor.dims)
    if tensor.data_type in PACKED_4BIT:
        return (count + 1) // 2
    try:
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)
    except Exception:  # KeyError or ValueError on a number ONNX has no type for
        raise ModelError(f"{where}: {type_name(tensor.data_type)} cannot be stored as external data") from None
    if dtype.kind in "OSU":
        raise ModelError(f"{where}: strings cannot be stored as external data")
    return count * dtype.itemsize


def _tensors(graph: onnx.GraphProto):
    """Every tensor of a graph: initializers, and those in node attributes and subgraphs."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield from (sparse.values, sparse.indices)
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            for sparse in [*([attr.sparse_tensor] if attr.HasField("sparse_tensor") else []), *attr.sparse_tensors]:
                yield from (sparse.values, sparse.indices)
            for subgraph in [*([attr.g] if attr.HasField("g") else []), *attr.graphs]:
                yield from _tensors(subgraph)


class Graph:
    """The nodes of a checked model in execution order, with producer/consumer maps."""

    def __init__(self, model: onnx.ModelProto, path: str):
        self.path = path
        self._model = model
        graph = model.graph
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
        self.nodes = list(graph.node)
        self._reads: dict[int, tuple[onnx.NodeProto, tuple[str, ...]]] = {}  # {id(node): (node, its reads)}
        self.all_nodes = list(_nodes_with_branches(graph))  # If branches are lowered in place
        for node in self.nodes:  # those of a branch when it is taken (see check_domain)
            self.check_domain(node)
        self.initializers = {}
        for tensor in graph.initializer:
            try:
                self.initializers[tensor.name] = numpy_helper.to_array(tensor)
            except Exception as e:
                raise ModelError(f"{path}: initializer '{tensor.name}' cannot be read ({first_line(e)})") from None
        self.inputs = {vi.name: vi for vi in graph.input}
        self.outputs = [vi.name for vi in graph.output]
        self.output_infos = {vi.name: vi for vi in graph.output}
        self.producer = {}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in self.all_nodes:
            for name in node.output:
                if name:
                    self.producer[name] = node
            for name in self.reads(node):
                self.consumers.setdefault(name, []).append(node)

    @functools.cached_property
    def value_types(self) -> dict[str, int]:
        """{value name: element type} for every value ONNX's type inference types, in the graph
        and its If branches (the runtime holds every type as float32; the ops whose meaning
        depends on it ask here). Empty when inference fails: no type is then known."""
        try:
            inferred = onnx.shape_inference.infer_shapes(self._model, strict_mode=False)
        except Exception:  # noqa: BLE001 - inference raises several kinds on a graph it cannot type
            return {}
        types, pending = {}, [inferred.graph]
        while pending:
            graph = pending.pop()
            for info in [*graph.input, *graph.output, *graph.value_info]:
                if info.type.tensor_type.elem_type:
                    types.setdefault(info.name, info.type.tensor_type.elem_type)
            pending += [b for node in graph.node for b in _branches(node)]
        return types

    def reads(self, node: onnx.NodeProto) -> tuple[str, ...]:
        """The names ``node`` reads: its inputs, and for an If those its branches read from
        outside (each branch sees the enclosing scopes' values by name). Worked out once per
        node: a load asks several times for each, and an If's answer walks every node inside it
        (Silero VAD v5: 1130 questions, which walked 12,000 nodes)."""
        known = self._reads.get(id(node))
        if known is None:  # the node is held with its answer, so that its id stays its own
            known = self._reads[id(node)] = node, self._read_names(node)
        return known[1]

    @staticmethod
    def _read_names(node: onnx.NodeProto) -> tuple[str, ...]:
        names = [name for name in node.input if name]
        for branch in _branches(node):
            defined = {t.name for t in branch.initializer} | {vi.name for vi in branch.input}
            inner_inputs = []
            for inner in _nodes_with_branches(branch):
                defined.update(inner.output)
                inner_inputs.extend(inner.input)
            names.extend(n for n in inner_inputs if n and n not in defined)
            names.extend(o.name for o in branch.output if o.name not in defined)
        return tuple(dict.fromkeys(names))

    def check_domain(self, node: onnx.NodeProto, fail=None) -> None:
        """Refuse an op of another domain than ONNX's, through ``fail`` (default: ``self.fail``)."""
        if node.domain not in ("", "ai.onnx"):
            (fail or self.fail)(node, f"ops of domain '{node.domain}' are not supported")

    def describe(self, node: onnx.NodeProto) -> str:
        label = node.name or (node.output[0] if node.output else "?")
        return f"node '{label}' ({node.op_type})"

    def fail(self, node: onnx.NodeProto | None, reason: str):
        where = f"{self.describe(node)}: " if node is not None else ""
        raise ModelError(f"{self.path}: {where}{reason}")

    # -- structure ---------------------------------------------------------------------------

    def recurrent_nodes(self) -> list[onnx.NodeProto]:
        """Every LSTM / GRU / RNN node, those inside If branches included."""
        return [n for n in self.all_nodes if n.op_type in RECURRENT_OPS]

    def data_inputs(self) -> list[str]:
        """Graph inputs without an initializer: the model input and the state inputs."""
        return [name for name in self.inputs if name not in self.initializers]

    def source_input(self, name: str) -> str | None:
        """The graph input that ``name`` is a glue-only function of, if any."""
        while name not in self.inputs:
            node = self.producer.get(name)
            if node is None or node.op_type not in GLUE_OPS or not node.input:
                return None
            name = node.input[0]
        return name

    def state_inputs(self) -> dict[str, onnx.NodeProto]:
        """Graph inputs that carry recurrent state, each with the first node it initialises."""
        found = {}
        for node in self.recurrent_nodes():
            for index in (5, 6):  # initial_h, initial_c
                if len(node.input) > index and node.input[index]:
                    source = self.source_input(node.input[index])
                    if source is not None:
                        found.setdefault(source, node)
        return found

    def is_state_output(self, name: str) -> bool:
        """True when ``name`` is computed by glue from the recurrent nodes' Y_h / Y_c only.
        (A walk over the glue, each value visited once, however long or branching it is.)"""
        seen, pending = set(), [name]
        while pending:
            value = pending.pop()
            if value in seen or value in self.initializers:
                continue
            seen.add(value)
            node = self.producer.get(value)
            if node is None or (node.op_type not in RECURRENT_OPS and node.op_type not in GLUE_OPS):
                return False
            if node.op_type in RECURRENT_OPS:
                if list(node.output).index(value) == 0:
                    return False
                continue
            pending.extend(n for n in (node.input if node.op_type == "Concat" else node.input[:1]) if n)
        return True

    def model_output(self) -> str:
        """The first graph output that is not a state output (or the first output)."""
        if not self.outputs:
            self.fail(None, "the graph has no outputs")
        for name in self.outputs:
            if not self.is_state_output(name):
                return name
        return self.outputs[0]

    def needed_nodes(self, roots: list[str]) -> list[onnx.NodeProto]:
        """Nodes that the values ``roots`` and the recurrent nodes depend on, in order."""
        needed: set[int] = set()
        stack = [self.producer[r] for r in roots if r in self.producer]
        stack += [n for n in self.nodes if n.op_type in RECURRENT_OPS]
        while stack:
            node = stack.pop()
            if id(node) in needed:
                continue
            needed.add(id(node))
            stack.extend(self.producer[n] for n in self.reads(node) if n in self.producer)
        return [n for n in self.nodes if id(n) in needed]

    def const_ints(self, name: str) -> list[int] | None:
        """The value of an initializer or Constant node output, as ints, if it is one."""
        if name in self.initializers:
            return [int(v) for v in np.asarray(self.initializers[name]).ravel()]
        node = self.producer.get(name)
        if node is not None and node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    return [int(v) for v in numpy_helper.to_array(attr.t).ravel()]
                if attr.name in ("value_int", "value_ints"):
                    return [int(v) for v in np.atleast_1d(onnx.helper.get_attribute_value(attr))]
        return None

    def input_axes(self, name: str) -> tuple[int | None, int | None]:
        """(time axis, batch axis) of graph input ``name``, found by following it through glue
        to the X input of a recurrent node, whose layout fixes both; not a reverse or bidirectional
        node's across a fixed axis (e.g. the bins of a frame), a sequence that runs inside the
        step. (None, None) if not found."""
        rank, dims = _rank(self.inputs[name]), input_dims(self.inputs[name])
        frontier = [(name, list(range(rank)), rank)]  # tensor, where each input axis is, its rank
        seen = set()
        while frontier:
            tensor, pos, rank = frontier.pop()
            if (tensor, tuple(pos)) in seen:
                continue
            seen.add((tensor, tuple(pos)))
            for node in self.consumers.get(tensor, []):
                if node.op_type in RECURRENT_OPS:
                    if node.input[0] != tensor:
                        continue
                    time_pos, batch_pos = (1, 0) if attribute(node, "layout", 0) else (0, 1)
                    time = pos.index(time_pos) if time_pos in pos else None
                    batch = pos.index(batch_pos) if batch_pos in pos else None
                    if time is not None and (dims[time] or 1) > 1 and \
                            attribute(node, "direction", b"forward") != b"forward":
                        continue  # a fixed sequence that a node runs backwards lies inside the step
                    return time, batch
                moved = self._move_axes(node, tensor, pos, rank)
                if moved is not None:
                    frontier.append((node.output[0], *moved))
        return None, None

    def _move_axes(self, node, tensor, pos, rank):
        """(where the tracked axes land in node's first output, its rank), or None."""
        op = node.op_type
        if op in ("Identity", "Dropout", "Cast", *ELEMENTWISE_UNARY):
            return pos, rank
        if op in ELEMENTWISE_BINARY:  # e.g. input normalisation: (x - mean) / std
            other = next((n for n in node.input if n != tensor), None)
            constant = self.initializers.get(other)
            if constant is not None and constant.ndim <= rank:
                return pos, rank
            return None
        if op == "Transpose":
            perm = attribute(node, "perm", None) or list(reversed(range(rank)))
            return [perm.index(p) if p is not None else None for p in pos], rank
        if op == "Gather" and len(node.input) > 1 and node.input[1] == tensor and attribute(node, "axis", 0) == 0:
            return pos, rank + 1  # embedding lookup of a 2-D table: the index axes lead
        if op in ("Unsqueeze", "Squeeze"):
            axes = attribute(node, "axes", None)
            if axes is None and len(node.input) > 1:
                axes = self.const_ints(node.input[1])
            if axes is None:
                return None
            if op == "Unsqueeze":
                out_rank = rank + len(axes)
                inserted = {a % out_rank for a in axes}
                kept = [i for i in range(out_rank) if i not in inserted]
                return [kept[p] if p is not None else None for p in pos], out_rank
            removed = {a % rank for a in axes}
            kept = [i for i in range(rank) if i not in removed]
            return [kept.index(p) if p in kept else None for p in pos], len(kept)
        return None


def _branches(node: onnx.NodeProto) -> list[onnx.GraphProto]:
    """The then and else branches of an If (other ops' subgraphs are only ever folded)."""
    if node.op_type != "If":
        return []
    return [a.g for a in node.attribute if a.type == onnx.AttributeProto.GRAPH]


def _nodes_with_branches(graph: onnx.GraphProto):
    """The nodes of ``graph`` and, depth first, of the If branches inside it."""
    pending = [iter(graph.node)]
    while pending:
        node = next(pending[-1], None)
        if node is None:
            pending.pop()
            continue
        yield node
        pending.extend(iter(b.node) for b in reversed(_branches(node)))


def attribute(node, name, default):
    for attr in node.attribute:
        if attr.name == name:
            value = onnx.helper.get_attribute_value(attr)
            return list(value) if isinstance(value, (list, tuple)) else value
    return default


def _rank(value_info) -> int:
    return len(value_info.type.tensor_type.shape.dim)


def input_dims(value_info) -> list[int | None]:
    """The declared dims of a graph input: ints, or None for symbolic / unknown dims."""
    dims = []
    for d in value_info.type.tensor_type.shape.dim:
        dims.append(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None)
    return dims


def elem_type(value_info) -> int:
    return value_info.type.tensor_type.elem_type


def type_name(elem: int) -> str:
    """ONNX's name of an element type, or its number when it names none."""
    try:
        return onnx.TensorProto.DataType.Name(elem)
    except ValueError:
        return f"element type {elem}"

