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

A kernel called this way is ``declare``d with its argument and result types, which the call site
must match exactly (checked when the interpreter compiles): the caller passes the arguments in
numba's own calling convention for those types.
"""

from functools import cache

from numba import types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic

_declared = {}  # kernel (a numba dispatcher) -> its signature


def declare(kernel, result, *args):
    """Register ``kernel`` for ``call`` as taking ``args`` and returning ``result`` (numba types);
    returns the kernel."""
    _declared[kernel] = result(*args)
    return kernel


@cache
def address(kernel) -> int:
    """Where ``kernel``'s compiled code starts (compiled now, or loaded from the cache)."""
    signature = _declared[kernel]
    kernel.compile(signature.args)
    compiled = kernel.overloads[signature.args]
    if compiled.signature.return_type != signature.return_type:
        raise TypeError(f"{kernel.__name__} returns {compiled.signature.return_type}, "
                        f"declared {signature.return_type}")
    return compiled.library.get_pointer_to_function(compiled.fndesc.llvm_func_name)


@intrinsic
def call(typingctx, kernel, at, *args):
    """``kernel(*args)``, running the code at address ``at`` (an int64 that ``address`` gave for
    this kernel). A zero address raises RuntimeError: the model's table lacks the kernel."""
    declared = _declared.get(getattr(kernel, "dispatcher", None))
    if declared is None:
        raise TypingError(f"call: {kernel} is not a declared kernel (linking.declare)")
    if tuple(args) != declared.args:
        raise TypingError(f"call: {kernel.dispatcher.__name__} takes {declared.args}, given {tuple(args)}")

    def codegen(context, builder, signature, values):
        fnty = context.call_conv.get_function_type(declared.return_type, declared.args)
        with builder.if_then(cgutils.is_null(builder, values[1]), likely=False):
            context.call_conv.return_user_exc(builder, RuntimeError,
                                              (f"{kernel.dispatcher.__name__} is not in this model's kernel table",))
        function = builder.inttoptr(values[1], fnty.as_pointer())
        status, result = context.call_conv.call_function(builder, function, declared.return_type,
                                                         declared.args, cgutils.unpack_tuple(builder, values[2]))
        with cgutils.if_unlikely(builder, status.is_error):
            context.call_conv.return_status_propagate(builder, status)
        return result

    return declared.return_type(kernel, types.int64, types.StarArgTuple(args)), codegen
