"""Register-blocked multiply-accumulate: the inner kernel of every matrix product.

``block(rows, vectors)`` builds a kernel that computes, for a tile of ``rows`` input rows and
``vectors * LANES`` consecutive output columns::

    float32 M:  for k in 0 .. n_in-1:  out[r, j] = fma(x[r, k], M[k, j], out[r, j])
    int8 M:     acc = 0;  for k in 0 .. n_in-1:  acc = fma(x[r, k], M[k, j], acc)
                out[r, j] = fma(acc, scale[j], out[r, j])

with the ``rows * vectors`` accumulators held in registers for the whole k loop: each weight
vector is loaded once per k and used for every row, each input once per k and used for every
column: the structure of BLAS micro-kernels (MLAS, BLIS). Every output is the same chain of
fused multiply-adds, in the same order, whatever the tile: a product for many rows at once
gives exactly the numbers of one row at a time; for float32 M also however the k range is
split between calls (the accumulator is the output itself).

Written in plain numba, the same loops keep the accumulators in memory (LLVM cannot prove that
the output does not alias the weights, so it neither vectorises across the tile nor keeps it in
registers); so the tile is emitted directly as LLVM vector IR. LLVM still picks the instructions for the machine (FMA on
x86-64 with AVX2, NEON on Arm), and a vector wider than the machine's is split.

Arguments of a built kernel (offsets and strides count elements, from each array's first)::

    (m, m_off, ld, x, x_off, x_stride, n_in, out, out_off, out_stride, scale, scale_off)

``m`` is the float32 or int8 weight array (row k of the tile starts at m_off + k*ld), ``x`` and
``out`` any float32 arrays, ``scale`` the float32 array holding int8 M's scales, or None for a
float32 M (the kernel is specialised on the types, like any numba function).
"""

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

# LANES: floats per vector, one AVX register; LLVM splits it in two on 128-bit machines
from ..isa import LANES

_F32 = ir.FloatType()
_I64 = ir.IntType(64)
_I32 = ir.IntType(32)
_VECTOR = ir.VectorType(_F32, LANES)
_BYTES = ir.VectorType(ir.IntType(8), LANES)


def block(rows: int, vectors: int):
    """The kernel for a tile of ``rows`` x ``vectors * LANES`` (see the module docstring)."""

    @intrinsic
    def kernel(typingctx, m, m_off, ld, x, x_off, x_stride, n_in, out, out_off, out_stride, scale, scale_off):
        int8 = m.dtype == types.int8
        if int8 == (scale == types.none):
            return None  # int8 weights come with their scales, float32 ones without
        int64 = types.int64
        signature = types.void(m, int64, int64, x, int64, int64, int64, out, int64, int64, scale, int64)

        def codegen(context, builder, sig, args):
            (m_arr, m_off, ld, x_arr, x_off, x_stride, n_in,
             out_arr, out_off, out_stride, scale_arr, scale_off) = args

            def data(index, value):
                return context.make_array(sig.args[index])(context, builder, value).data

            def at(pointer, offset, vector_type):
                return builder.bitcast(builder.gep(pointer, [offset]), vector_type.as_pointer())

            m_data, x_data, out_data = data(0, m_arr), data(3, x_arr), data(7, out_arr)
            fma = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(_VECTOR, [_VECTOR] * 3), f"llvm.fmuladd.v{LANES}f32")
            splat_mask = ir.Constant(ir.VectorType(_I32, LANES), [0] * LANES)
            undefined = ir.Constant(_VECTOR, ir.Undefined)
            targets = [[at(out_data, builder.add(builder.add(out_off, builder.mul(ir.Constant(_I64, r), out_stride)),
                                                 ir.Constant(_I64, v * LANES)), _VECTOR)
                        for v in range(vectors)] for r in range(rows)]
            # One stack slot per accumulator, which mem2reg turns into a register (constant
            # indexes): the tile of out itself for float32 M, zeros for int8 M.
            zero = ir.Constant(_VECTOR, None)
            accumulators = [[cgutils.alloca_once_value(builder, zero if int8 else builder.load(target, align=4))
                             for target in row] for row in targets]
            x_rows = [builder.add(x_off, builder.mul(ir.Constant(_I64, r), x_stride)) for r in range(rows)]
            with cgutils.for_range(builder, n_in) as loop:
                k = loop.index
                row_start = builder.add(m_off, builder.mul(k, ld))
                weights = []
                for v in range(vectors):
                    offset = builder.add(row_start, ir.Constant(_I64, v * LANES))
                    if int8:
                        weights.append(builder.sitofp(builder.load(at(m_data, offset, _BYTES), align=1), _VECTOR))
                    else:
                        weights.append(builder.load(at(m_data, offset, _VECTOR), align=4))
                for r in range(rows):
                    value = builder.load(builder.gep(x_data, [builder.add(x_rows[r], k)]))
                    splat = builder.shuffle_vector(
                        builder.insert_element(undefined, value, ir.Constant(_I32, 0)), undefined, splat_mask)
                    for v in range(vectors):
                        slot = accumulators[r][v]
                        builder.store(builder.call(fma, [splat, weights[v], builder.load(slot)]), slot)
            if int8:
                scale_data = data(10, scale_arr)
                scales = [builder.load(at(scale_data, builder.add(scale_off, ir.Constant(_I64, v * LANES)), _VECTOR),
                                       align=4) for v in range(vectors)]
            for r in range(rows):
                for v in range(vectors):
                    total = builder.load(accumulators[r][v])
                    if int8:
                        total = builder.call(fma, [total, scales[v], builder.load(targets[r][v], align=4)])
                    builder.store(total, targets[r][v], align=4)
            return context.get_dummy_value()

        return signature, codegen

    return kernel
