"""A float32's bits as an int32 and back: what exponent tricks (fastexp's 2^n) and roundings to
narrower floats (float16, bfloat16) are written with. LLVM's bitcast, no memory involved."""

from llvmlite import ir
from numba import types
from numba.extending import intrinsic


@intrinsic
def float_from_bits(typingctx, bits):
    """The float32 with the same bits as an int32."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.int32), codegen


@intrinsic
def bits_from_float(typingctx, value):
    """The int32 with the same bits as a float32."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))
    return types.int32(types.float32), codegen
