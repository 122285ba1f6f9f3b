"""Constant folding under a budget: every value the loader computes from constants passes here.

A model file is hostile until proven otherwise: a few hundred bytes can ask for an 8 GB Pad, a
Conv of 10^12 multiply-adds or a Loop of 10^12 iterations. So before a node runs, the size of
its result comes from its inputs' shapes and constant values (ONNX's shape inference, given the
constants as data) and its work from the same shapes; a node over either budget, or whose
result cannot be sized before it runs, is refused with a ModelError naming it. Control flow is
run here, one body node at a time through the same checks: If takes its branch, Loop and Scan
run at most ``MAX_LOOP_ITERATIONS`` times. Random ops are never folded: the model would differ
from one load to the next.
"""

import math
from collections import ChainMap
from contextlib import contextmanager

import numpy as np
import onnx
from onnx import numpy_helper, shape_inference
from onnx.reference import ReferenceEvaluator

from .errors import first_line
from .quantized import QuantizedWeight

MAX_CONSTANT_ELEMENTS = 1 << 22  # 16 MB of float32: no streaming model folds a larger constant
# Work is counted in element operations, about a nanosecond each in numpy.
MAX_FOLD_WORK = 2 * 10**9  # what one load may spend folding: about two seconds
NODE_WORK = 100_000  # running one node, whatever its size: ~100 us of inference and evaluator set-up
INTERPRETED_WORK = 10_000  # per element for ops whose reference implementation loops in Python
MAX_LOOP_ITERATIONS = 1 << 12  # a Loop or Scan folded at load time runs at most this many times
MAX_SUBGRAPH_DEPTH = 8  # If / Loop / Scan bodies nested deeper are not folded
MAX_SHAPE_DATA = 1 << 16  # constant inputs up to this size are shown to shape inference as data

RANDOM_OPS = frozenset({"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
                        "Multinomial", "Bernoulli"})
# Ops whose result's size depends on their input values, but never exceeds their inputs'.
SIZED_BY_VALUES = frozenset({"NonZero", "Unique", "Compress"})
# Ops whose reference implementation visits each element in Python (pools, transposed conv, ...).
INTERPRETED = frozenset({"ConvTranspose", "MaxPool", "AveragePool", "LpPool", "MaxUnpool", "Col2Im",
                         "RoiAlign", "MaxRoiPool", "GridSample", "DeformConv", "NonMaxSuppression"})
POOLS = frozenset({"MaxPool", "AveragePool", "LpPool"})
CONTROL_FLOW = frozenset({"If", "Loop", "Scan"})


class Folder:
    """Folds nodes on constant values for one load, spending from one work budget.

    ``fail(node, reason)`` raises the loader's ModelError; ``describe(node)`` names a node.
    """

    def __init__(self, opset: int, fail, describe):
        self.opset = opset
        self._fail = fail
        self._describe = describe
        self.work_left = MAX_FOLD_WORK
        self._enclosing: list[str] = []  # "the body of node 'x' (Loop)", outermost first

    def fold(self, node: onnx.NodeProto, feeds: dict, scope) -> list:
        """The outputs of ``node`` on the constant ``feeds`` ({input name: value}); ``scope``
        maps the names that subgraphs may read from outside (values that are not numpy
        arrays are run-time values, which a subgraph may not read)."""
        op = node.op_type
        if op in RANDOM_OPS:
            self.fail(node, "random values are not folded: the model would differ at each load")
        values = [self._constant(node, name, feeds[name]) if name in feeds else None for name in node.input]
        if op == "If":
            return self._fold_if(node, values, scope)
        if op == "Loop":
            return self._fold_loop(node, values, scope)
        if op == "Scan":
            return self._fold_scan(node, values, scope)
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
            self.fail(node, "of the ops with subgraphs, only If, Loop and Scan are folded")
        if op in ("Div", "Mod") and _divides_integers_by_zero(values):
            self.fail(node, "divides integers by zero, which ONNX leaves undefined")
        shapes = self._output_shapes(node, values)
        for shape in shapes:
            self._check_size(node, math.prod(shape), f"a tensor of shape {list(shape)}")
        self._spend(node, _work(node, values, shapes))
        feeds = {name: value for name, value in zip(node.input, values) if value is not None}
        try:
            evaluator = ReferenceEvaluator(node, opsets={"": self.opset})
            with np.errstate(all="ignore"):
                outputs = evaluator.run(None, feeds)
        except Exception as e:  # the reference evaluator raises whatever numpy raises
            self.fail(node, f"cannot be evaluated on its constant inputs ({first_line(e)})")
        for out in outputs:  # shape inference may be laxer than the evaluator
            self._check_size(node, np.size(out), "a larger tensor than its shapes say")
        return outputs

    def fail(self, node, reason: str):
        inside = f" (in {', in '.join(reversed(self._enclosing))})" if self._enclosing else ""
        self._fail(node, reason + inside)

    # -- size and work -------------------------------------------------------------------

    def _check_size(self, node, size: int, what: str) -> None:
        if size > MAX_CONSTANT_ELEMENTS:
            self.fail(node, f"would make {what} of {size} elements; at most {MAX_CONSTANT_ELEMENTS} "
                            f"are computed at load time")

    def _spend(self, node, work: int) -> None:
        self.work_left -= work
        if self.work_left < 0:
            self.fail(node, f"folding the model's constants would take more than {MAX_FOLD_WORK:.0e} "
                            f"element operations (this node: {work:.1e})")

    def _output_shapes(self, node, values) -> list[tuple[int, ...]]:
        """The shape of each output of ``node``, known before it runs, or a refusal."""
        try:
            schema = onnx.defs.get_schema(node.op_type, self.opset, node.domain)
            types, data = {}, {}
            for name, value in zip(node.input, values):
                if value is None:
                    continue
                text = value.dtype.kind in "OSU"
                elem = onnx.TensorProto.STRING if text else onnx.helper.np_dtype_to_tensor_dtype(value.dtype)
                types[name] = onnx.helper.make_tensor_type_proto(elem, value.shape)
                if value.size <= MAX_SHAPE_DATA:
                    data[name] = numpy_helper.from_array(value, name)
            inferred = shape_inference.infer_node_outputs(
                schema, node, types, data, opset_imports=[onnx.helper.make_opsetid("", self.opset)])
        except Exception as e:  # SchemaError, InferenceError, or a dtype ONNX has no type for
            self.fail(node, f"cannot be evaluated on its constant inputs ({first_line(e)})")
        shapes = []
        for name in filter(None, node.output):
            tensor = inferred[name].tensor_type if name in inferred else None
            dims = list(tensor.shape.dim) if tensor is not None and tensor.HasField("shape") else None
            if dims is not None and all(d.HasField("dim_value") and d.dim_value >= 0 for d in dims):
                shapes.append(tuple(d.dim_value for d in dims))
            elif node.op_type in SIZED_BY_VALUES:  # at most every element, one index per axis
                largest = max((v for v in values if v is not None), key=np.size)
                shapes.append((max(largest.ndim, 1), largest.size))
            else:
                self.fail(node, "the size of its result is not known before it runs, so it is not folded")
        return shapes

    # -- control flow --------------------------------------------------------------------

    def _fold_if(self, node, values, scope) -> list:
        cond = self._flag(node, values[0], "cond")
        branch = "then_branch" if cond else "else_branch"
        return self._run_graph(node, branch, [], scope)

    def _fold_loop(self, node, values, scope) -> list:
        values = values + [None] * (2 - len(values))
        trip_count = None if values[0] is None else self._count(node, values[0])
        cond = True if values[1] is None else self._flag(node, values[1], "cond")
        if trip_count is not None and trip_count > MAX_LOOP_ITERATIONS:
            self.fail(node, f"runs {trip_count} iterations; a Loop folded at load time runs at most "
                            f"{MAX_LOOP_ITERATIONS}")
        carried = values[2:]
        body = _graph_attribute(node, "body")
        scans: list[list] = [[] for _ in range(len(body.output) - 1 - len(carried))]
        iteration = 0
        while cond and (trip_count is None or iteration < trip_count):
            if iteration == MAX_LOOP_ITERATIONS:
                self.fail(node, f"its condition still holds after {MAX_LOOP_ITERATIONS} iterations; "
                                f"a Loop folded at load time must end within that")
            outputs = self._run_graph(node, "body", [np.array(iteration, np.int64), np.array(cond), *carried], scope)
            cond = self._flag(node, outputs[0], "cond output of the body")
            carried = outputs[1:1 + len(carried)]
            self._collect(node, scans, outputs[1 + len(carried):])
            iteration += 1
        return carried + [self._stack(node, scanned) for scanned in scans]

    def _fold_scan(self, node, values, scope) -> list:
        if self.opset < 9:
            self.fail(node, "Scan of opset 8 (with sequence_lens) is not folded")
        count = _int_attribute(node, "num_scan_inputs", 0)
        if not 0 < count <= len(values) or any(v is None for v in values):
            self.fail(node, f"num_scan_inputs={count} does not match its {len(values)} inputs")
        states, sequences = values[:len(values) - count], values[len(values) - count:]
        axes = _ints_attribute(node, "scan_input_axes", [0] * count)
        directions = _ints_attribute(node, "scan_input_directions", [0] * count)
        if any(any(_ints_attribute(node, name, [])) for name in ("scan_output_axes", "scan_output_directions")):
            self.fail(node, "scan outputs along another axis than 0 or reversed are not folded")
        try:
            sequences = [np.moveaxis(x, axis, 0)[::-1 if reverse else 1]
                         for x, axis, reverse in zip(sequences, axes, directions, strict=True)]
        except (ValueError, np.exceptions.AxisError) as e:
            self.fail(node, f"scan inputs do not match scan_input_axes / directions ({first_line(e)})")
        lengths = {len(x) for x in sequences}
        if len(lengths) != 1:
            self.fail(node, f"scan inputs have different lengths {sorted(lengths)}")
        length = lengths.pop()
        if length > MAX_LOOP_ITERATIONS:
            self.fail(node, f"runs {length} iterations; a Scan folded at load time runs at most {MAX_LOOP_ITERATIONS}")
        scans: list[list] = [[] for _ in range(len(node.output) - len(states))]
        for step in range(length):
            outputs = self._run_graph(node, "body", [*states, *(x[step] for x in sequences)], scope)
            states = outputs[:len(states)]
            self._collect(node, scans, outputs[len(states):])
        return states + [self._stack(node, scanned) for scanned in scans]

    def _run_graph(self, owner, attribute_name: str, inputs: list, scope) -> list:
        """The outputs of subgraph ``attribute_name`` of ``owner`` on ``inputs``, each of its
        nodes folded through ``fold``; its nodes may read ``scope``'s constants too."""
        graph = _graph_attribute(owner, attribute_name)
        if graph is None:
            self.fail(owner, f"has no {attribute_name}")
        if len(self._enclosing) >= MAX_SUBGRAPH_DEPTH:
            self.fail(owner, f"subgraphs nested more than {MAX_SUBGRAPH_DEPTH} deep are not folded")
        if len(graph.input) != len(inputs):
            self.fail(owner, f"its {attribute_name} takes {len(graph.input)} inputs, given {len(inputs)}")
        local = {}
        for tensor in graph.initializer:
            try:
                local[tensor.name] = numpy_helper.to_array(tensor)
            except Exception as e:  # noqa: BLE001 - onnx raises several kinds on a bad tensor
                self.fail(owner, f"initializer '{tensor.name}' of its {attribute_name} cannot be read ({first_line(e)})")
        local.update((value_info.name, value) for value_info, value in zip(graph.input, inputs))
        values = ChainMap(local, scope)
        with self.inside(owner, attribute_name):
            for node in graph.node:
                missing = [name for name in node.input if name and name not in values]
                if missing:
                    self.fail(node, f"input '{missing[0]}' is not produced by any node")
                outputs = self.fold(node, {name: values[name] for name in node.input if name}, values)
                local.update((name, value) for name, value in zip(node.output, outputs) if name)
            missing = [o.name for o in graph.output if o.name not in values]
            if missing:
                self.fail(owner, f"output '{missing[0]}' of its {attribute_name} is not produced by any node")
            return [self._constant(owner, o.name, values[o.name]) for o in graph.output]

    @contextmanager
    def inside(self, owner, attribute_name: str):
        """Refusals while this holds say they are in subgraph ``attribute_name`` of ``owner``
        (also while the lowering walks an If's branch node by node)."""
        self._enclosing.append(f"the {attribute_name} of {self._describe(owner)}")
        try:
            yield
        finally:
            self._enclosing.pop()

    # -- values --------------------------------------------------------------------------

    def _constant(self, node, name: str, value) -> np.ndarray:
        if isinstance(value, QuantizedWeight):
            return np.asarray(value)
        if not isinstance(value, (np.ndarray, np.generic)):
            self.fail(node, f"reads '{name}', which is computed at run time: only constants are folded")
        return np.asarray(value)

    def _flag(self, node, value, what: str) -> bool:
        if value is None or np.size(value) != 1:
            self.fail(node, f"{what} must be one boolean, not {value!r}")
        return bool(np.ravel(value)[0])

    def _count(self, node, value) -> int:
        if np.size(value) != 1 or value.dtype.kind not in "iu":
            self.fail(node, f"trip count must be one integer, not {value!r}")
        return int(np.ravel(value)[0])

    def _collect(self, node, scans: list[list], values: list) -> None:
        """Append one iteration's scan outputs, refusing before they grow too large."""
        for scanned, value in zip(scans, values):
            scanned.append(value)
        self._check_size(node, len(scans[0]) * sum(np.size(v) for v in values) if scans else 0, "scan outputs")

    def _stack(self, node, parts: list) -> np.ndarray:
        """Per-iteration scan outputs stacked on a new first axis."""
        if not parts:
            self.fail(node, "runs no iteration, so its scan outputs have no known shape")
        try:
            return np.stack(parts)
        except ValueError as e:
            self.fail(node, f"its scan outputs change shape between iterations ({first_line(e)})")


def _work(node, values, shapes) -> int:
    """Element operations to evaluate ``node``: what it reads and writes, plus the
    multiply-adds of contractions and windows; many times that where ONNX's reference
    implementation loops in Python."""
    op = node.op_type
    out = sum(math.prod(s) for s in shapes)
    work = out + sum(v.size for v in values if v is not None)
    present = [v for v in values if v is not None]
    if op in ("MatMul", "MatMulInteger") and present and present[0].ndim:
        work += out * present[0].shape[-1]
    elif op == "Gemm" and present and present[0].ndim == 2:
        work += out * present[0].shape[0 if _int_attribute(node, "transA", 0) else 1]
    elif op in ("Conv", "ConvInteger") and len(present) > 1:
        work += out * math.prod(present[1].shape[1:])
    elif op == "ConvTranspose" and len(present) > 1:
        work += present[0].size * math.prod(present[1].shape[1:])
    elif op in POOLS:
        work += out * math.prod(_ints_attribute(node, "kernel_shape", []))
    elif op == "Einsum":
        work += _einsum_loops(node, present)
    if op in INTERPRETED:
        work *= INTERPRETED_WORK
    return NODE_WORK + work


def _einsum_loops(node, operands) -> int:
    """The iterations of a plain nested loop over every index of an Einsum equation."""
    attr = next((a for a in node.attribute if a.name == "equation"), None)
    terms = attr.s.decode(errors="replace").replace(" ", "").split("->")[0].split(",") if attr else []
    extents: dict[str, int] = {}
    broadcast = 1
    for term, operand in zip(terms, operands):
        letters = term.replace("...", "")
        explicit = operand.shape[len(operand.shape) - len(letters):] if "..." in term else operand.shape
        for letter, extent in zip(letters, explicit):
            extents[letter] = max(extents.get(letter, 1), extent)
        if "..." in term:
            broadcast = max(broadcast, math.prod(operand.shape[:len(operand.shape) - len(letters)]))
    return broadcast * math.prod(extents.values())


def _graph_attribute(node, name: str) -> onnx.GraphProto | None:
    return next((a.g for a in node.attribute if a.name == name and a.type == onnx.AttributeProto.GRAPH), None)


def _int_attribute(node, name: str, default: int) -> int:
    return next((a.i for a in node.attribute if a.name == name), default)


def _ints_attribute(node, name: str, default: list[int]) -> list[int]:
    return next((list(a.ints) for a in node.attribute if a.name == name), default)


def _divides_integers_by_zero(values: list) -> bool:
    """numpy folds an integer x / 0 or x % 0 to 0 with a warning; ONNX Runtime refuses the file."""
    divisor = values[1] if len(values) > 1 else None
    return isinstance(divisor, np.ndarray) and divisor.dtype.kind in "iu" and not divisor.all()
