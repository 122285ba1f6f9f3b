"""Kernels compiled one by one and called through an address, so that a model compiles only the
kernels it uses, and each of them once.

numba links every jitted function a jitted function calls into the caller's module and optimises
the whole again, at every level of the call tree. The interpreter calls every kernel: on a fresh
install (an empty cache) compiling it took ~30 s, two thirds of it LLVM optimising and generating
code for kernels again inside it, and for kernels the model at hand never runs. Here the
interpreter calls a kernel through the address a table holds (``call``), one table per model:
``address`` compiles a kernel on its own (or loads it from numba's on-disk cache) the first time
a model uses it, and the interpreter's own code is only the glue between kernels. An indirect
call costs a nanosecond or two per instruction and step.

A kernel called this way is ``declare``d with its ``Kind``: its argument and result types, which
the call site must match exactly (checked when the interpreter compiles): the caller passes the
arguments in numba's own calling convention for those types. Kernels of one kind are called from
one call site, whichever of them the address holds: the interpreter has four call sites, not one
per kernel (seventeen calls to type and optimise took 0.2 s of an empty cache's start).

The same holds one level down: the matrix product (``matvec.project``, two dozen register tiles
per kind of matrix) is called by six kernels, and was compiled again inside each (a GRU's first
step compiled it three times: alone, in the GRU kernel and in the input projection), for every
kind of matrix whether the model held it or not. A function ``link``ed is called through
``call_linked``: the caller loads its address from a cell of this process (an external symbol
the JIT resolves, as it does numba's own helpers), so it compiles once per install, and only
when ``address`` is first asked for it, which fills the cell. Functions of one signature that the
caller picks among by a number (the activations; the unary, binary and reduction functions) are a
``Table``, called by ``call_indexed`` through one array of cells: one call site for all of them,
each compiled only when a model uses it.
"""

import ctypes
from functools import cache

from llvmlite import binding, ir
from numba import types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.core.imputils import lower_constant
from numba.extending import intrinsic, models, register_model, typeof_impl

_declared = {}  # kernel (a numba dispatcher) -> its Kind
_cells = {}  # linked function -> (the symbol of its cell, the cell: its address once compiled)
_slots = {}  # function of a Table -> (the table's cells, its index there)


class Kind:
    """A kind of kernel: the arguments it takes and its result (numba types). Compiled code
    names a kind as a global, for ``call``."""

    def __init__(self, name: str, result, *args):
        self.name, self.signature = name, result(*args)


class _KindType(types.Dummy):
    """numba's type of a ``Kind``: a constant with no value at run time (``call`` reads the
    signature when it compiles)."""

    def __init__(self, kind: Kind):
        self.kind = kind
        super().__init__(f"edgeseq.Kind({kind.name})")


class Table(Kind):
    """Functions of one signature at the indices of ``functions`` (a dict), called through one
    array of cells by ``call_indexed``; ``address`` of a function fills its cell."""

    def __init__(self, name: str, functions: dict, result, *args):
        super().__init__(name, result, *args)
        self.functions = functions
        self.cells = (ctypes.c_int64 * (max(functions) + 1))()
        self.symbol = f"edgeseq.table.{name}"
        binding.add_symbol(self.symbol, ctypes.addressof(self.cells))
        for index, function in functions.items():
            declare(function, self)
            _slots[function] = self.cells, index


typeof_impl.register(Kind)(lambda kind, context: _KindType(kind))
register_model(_KindType)(models.OpaqueModel)
lower_constant(_KindType)(lambda context, builder, kind_type, kind: context.get_dummy_value())


def declare(kernel, kind: Kind):
    """Register ``kernel`` for ``call`` as one of ``kind``; returns the kernel."""
    _declared[kernel] = kind
    return kernel


def kind_of(kernel) -> Kind:
    """The kind ``kernel`` was ``declare``d with."""
    return _declared[kernel]


def link(function, result, *args):
    """``declare`` ``function`` as taking ``args`` and returning ``result`` (numba types), and
    give it the cell that ``call_linked`` calls it through; returns the function. (The symbol is
    registered before any caller compiles or loads: a caller can only name the function after
    this ran.)"""
    declare(function, Kind(function.__name__, result, *args))
    symbol = f"edgeseq.linked.{function.py_func.__module__}.{function.__name__}"
    cell = ctypes.c_int64(0)
    binding.add_symbol(symbol, ctypes.addressof(cell))
    _cells[function] = symbol, cell
    return function


@cache
def address(kernel) -> int:
    """Where ``kernel``'s compiled code starts (compiled now, or loaded from the cache); a linked
    function's cell holds it from then on."""
    signature = _declared[kernel].signature
    kernel.compile(signature.args)
    compiled = kernel.overloads[signature.args]
    if compiled.signature.return_type != signature.return_type:
        raise TypeError(f"{kernel.__name__} returns {compiled.signature.return_type}, "
                        f"declared {signature.return_type}")
    at = compiled.library.get_pointer_to_function(compiled.fndesc.llvm_func_name)
    if kernel in _cells:
        _cells[kernel][1].value = at
    if kernel in _slots:
        cells, index = _slots[kernel]
        cells[index] = at
    return at


@intrinsic
def call(typingctx, kind, at, *args):
    """``kernel(*args)`` for the kernel of ``kind`` at address ``at`` (an int64 that ``address``
    gave for it). A zero address raises RuntimeError: the model's table lacks the kernel."""
    if not isinstance(kind, _KindType):
        raise TypingError(f"call: {kind} is not a Kind")
    declared = _checked(kind.kind, args, "call")

    def codegen(context, builder, signature, values):
        return _call_at(context, builder, declared, values[1], cgutils.unpack_tuple(builder, values[2]),
                        f"a {kind.kind.name} kernel is not in this model's kernel table")

    return declared.return_type(kind, types.int64, types.StarArgTuple(args)), codegen


@intrinsic
def call_linked(typingctx, function, *args):
    """``function(*args)`` for a ``link``ed function, through its cell. An empty cell (no
    ``address`` asked for the function in this process) raises RuntimeError."""
    if getattr(function, "dispatcher", None) not in _cells:
        raise TypingError(f"call_linked: {function} is not linked (linking.link)")
    declared = _checked(_declared[function.dispatcher], args, "call_linked")
    symbol = _cells[function.dispatcher][0]

    def codegen(context, builder, signature, values):
        module = builder.module
        cell = module.globals.get(symbol) or ir.GlobalVariable(module, ir.IntType(64), symbol)
        return _call_at(context, builder, declared, builder.load(cell), cgutils.unpack_tuple(builder, values[1]),
                        f"{function.dispatcher.__name__} has no address (linking.address)")

    return declared.return_type(function, types.StarArgTuple(args)), codegen


@intrinsic
def call_indexed(typingctx, table, index, *args):
    """``table.functions[index](*args)``, through the table's cells. An index with no function, or
    a function with no address yet (no ``address`` asked for it in this process), raises
    RuntimeError."""
    if not (isinstance(table, _KindType) and isinstance(table.kind, Table)):
        raise TypingError(f"call_indexed: {table} is not a Table")
    declared, size = _checked(table.kind, args, "call_indexed"), len(table.kind.cells)
    symbol = table.kind.symbol

    def codegen(context, builder, signature, values):
        module, i64 = builder.module, ir.IntType(64)
        cells = module.globals.get(symbol) or ir.GlobalVariable(module, ir.ArrayType(i64, size), symbol)
        index = values[1]
        inside = builder.icmp_unsigned("<", index, ir.Constant(i64, size))
        cell = builder.gep(cells, [ir.Constant(i64, 0), builder.select(inside, index, ir.Constant(i64, 0))])
        at = builder.select(inside, builder.load(cell), ir.Constant(i64, 0))
        return _call_at(context, builder, declared, at, cgutils.unpack_tuple(builder, values[2]),
                        f"this {table.kind.name} has no address (linking.address)")

    return declared.return_type(table, types.int64, types.StarArgTuple(args)), codegen


def _checked(kind, args, caller):
    """The signature of ``kind``, checked against the argument types ``args``."""
    if tuple(args) != kind.signature.args:
        raise TypingError(f"{caller}: {kind.name} takes {kind.signature.args}, given {tuple(args)}")
    return kind.signature


def _call_at(context, builder, declared, at, args, missing):
    """Call the code at address ``at`` (an i64) with ``args``; a zero address raises RuntimeError(missing)."""
    fnty = context.call_conv.get_function_type(declared.return_type, declared.args)
    with builder.if_then(cgutils.is_null(builder, at), likely=False):
        context.call_conv.return_user_exc(builder, RuntimeError, (missing,))
    status, result = context.call_conv.call_function(builder, builder.inttoptr(at, fnty.as_pointer()),
                                                     declared.return_type, declared.args, args)
    with cgutils.if_unlikely(builder, status.is_error):
        context.call_conv.return_status_propagate(builder, status)
    return result
