"""Register-blocked multiply-accumulate: the inner kernel of every matrix product.

``block(rows, vectors, lanes)`` builds a kernel that computes, for a tile of ``rows`` input rows
and ``vectors * lanes`` consecutive output columns::

    no scale:    for k in 0 .. n_in-1:  out[r, j] = fma(x[r, k], M[k, j], out[r, j])
    with scale:  acc = 0;  for k in 0 .. n_in-1:  acc = fma(x[r, k], M[k, j], acc)
                 out[r, j] = fma(acc, scale[j], out[r, j])

with the ``rows * vectors`` accumulators held in registers for the whole k loop: each weight
vector is loaded once per k and used for every row, each input once per k and used for every
column: the structure of BLAS micro-kernels (MLAS, BLIS). Every output is the same chain of
fused multiply-adds, in the same order, whatever the tile and the vector width: a product for
many rows at once gives exactly the numbers of one row at a time; without a scale also however
the k range is split between calls (the accumulator is the output itself).

int8 weights (``M`` an int8 array) come with their scales and are converted to float32 as they
are loaded (exactly), once per tile: a tile of 8 rows pays one conversion for 16 multiply-adds.

Written in plain numba, the same loops keep the accumulators in memory (LLVM cannot prove that
the output does not alias the weights, so it neither vectorises across the tile nor keeps it in
registers); so the tile is emitted directly as LLVM vector IR. LLVM still picks the instructions
for the machine (FMA on x86-64, NEON on Arm; the splat of an input folds into AVX-512's
broadcast operand), and a vector wider than the machine's is split.

Arguments of a built kernel (offsets and strides count elements, from each array's first)::

    (m, m_off, ld, x, x_off, x_stride, n_in, out, out_off, out_stride, scale, scale_off)

``m`` is the float32 or int8 weight array (row k of the tile starts at m_off + k*ld), ``x`` and
``out`` any float32 arrays, ``scale`` a float32 array of scales or None (the kernel is
specialised on the types, like any numba function). ``block(..., strips=s)`` takes its outputs
from s strips of FLOAT32_PANELS instead, each n_in rows of ld floats, one after another (strip i
from m_off + i*n_in*ld): a one-row tile wider than a strip.

``WIDE_LANES`` is the vector width the machine's registers hold: 16 floats where numba compiles
for AVX-512 (32 registers of 16), else ``LANES`` (AVX2's 16 registers of 8; NEON's 32 of 4 take
a vector of 8 in two).
"""

from llvmlite import binding, ir
from numba import types
from numba.core import cgutils, config
from numba.extending import intrinsic

# LANES: floats per vector, one AVX register; LLVM splits it in two on 128-bit machines
from ..isa import LANES

_F32 = ir.FloatType()
_I64 = ir.IntType(64)
_I32 = ir.IntType(32)


def _compiles_for_avx512() -> bool:
    """Whether numba compiles for a CPU with AVX-512 (the host's, unless NUMBA_CPU_NAME says
    another): its features as numba passes them to LLVM."""
    if config.CPU_NAME and config.CPU_NAME != "host":
        features = config.CPU_FEATURES or ""
    else:
        features = binding.get_host_cpu_features().flatten()
    return "+avx512f" in features.split(",")


WIDE_LANES = 2 * LANES if _compiles_for_avx512() else LANES


def block(rows: int, vectors: int, lanes: int = LANES, strips: int = 1):
    """The kernel for a tile of ``rows`` x ``vectors * lanes`` (see the module docstring)."""

    @intrinsic
    def kernel(typingctx, m, m_off, ld, x, x_off, x_stride, n_in, out, out_off, out_stride, scale, scale_off):
        return _typed_block(rows, vectors, lanes, m, x, out, scale, strips)

    return kernel


def tiles(shapes: dict):
    """An intrinsic ``tile(rows, width, <the arguments of a block kernel>)`` for literal ``rows``:
    the kernel of ``block(rows, *shapes[rows, width])`` (shapes maps (rows, width) to (vectors,
    lanes)), emitted inline in the caller. A function choosing the kernel by its arguments is a
    call LLVM need not inline, and did not for int8 tiles (their conversions and scales make them
    larger): a call of some forty arguments per tile, 1.2x the time of the product's tiles alone
    at 16 inputs. A ``width`` known only at run time takes the kernel of its width among those of
    ``rows`` (the narrowest for any other), through a switch: one compiled function serves every
    width, where a literal width compiled the function calling the tile once per width."""

    @intrinsic(prefer_literal=True)
    def tile(typingctx, rows, width, m, m_off, ld, x, x_off, x_stride, n_in, out, out_off, out_stride, scale,
             scale_off):
        if not isinstance(rows, types.IntegerLiteral) or not isinstance(width, types.Integer):
            return None
        widths = ([width.literal_value] if isinstance(width, types.IntegerLiteral)
                  else sorted((w for r, w in shapes if r == rows.literal_value), reverse=True))
        kernels = [shapes.get((rows.literal_value, w)) for w in widths]
        typed = all(kernels) and [_typed_block(rows.literal_value, *shape, m, x, out, scale) for shape in kernels]
        if not typed or not all(typed):
            return None
        signature = typed[0][0]

        def codegen(context, builder, sig, args):
            *cases, (_, narrowest) = zip(widths, (emit for _, emit in typed))
            if cases:
                done, others = builder.append_basic_block("tile.done"), builder.append_basic_block("tile.narrowest")
                switch = builder.switch(args[1], others)
                for value, emit in cases:
                    case = builder.append_basic_block(f"tile.{value}")
                    switch.add_case(ir.Constant(args[1].type, value), case)
                    builder.position_at_end(case)
                    emit(context, builder, signature, args[2:])
                    builder.branch(done)
                builder.position_at_end(others)
            narrowest(context, builder, signature, args[2:])
            if cases:
                builder.branch(done)
                builder.position_at_end(done)
            return context.get_dummy_value()

        return types.void(rows, width, *signature.args), codegen

    return tile


def _typed_block(rows, vectors, lanes, m, x, out, scale, strips=1):
    """(signature, codegen) of the kernel of a ``rows`` x ``vectors * lanes`` tile for these
    argument types, its vectors in ``strips`` strips, or None where they do not fit (int8
    weights without scales)."""
    vector_type = ir.VectorType(_F32, lanes)
    bytes_type = ir.VectorType(ir.IntType(8), lanes)
    int8 = m.dtype == types.int8
    scaled = scale != types.none
    if int8 and not scaled:
        return None  # int8 weights come with their scales
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
            builder.module, ir.FunctionType(vector_type, [vector_type] * 3), f"llvm.fmuladd.v{lanes}f32")
        splat_mask = ir.Constant(ir.VectorType(_I32, lanes), [0] * lanes)
        undefined = ir.Constant(vector_type, ir.Undefined)
        targets = [[at(out_data, builder.add(builder.add(out_off, builder.mul(ir.Constant(_I64, r), out_stride)),
                                             ir.Constant(_I64, v * lanes)), vector_type)
                    for v in range(vectors)] for r in range(rows)]
        # One stack slot per accumulator, which mem2reg turns into a register (constant
        # indexes): the tile of out itself without scales, zeros with them.
        zero = ir.Constant(vector_type, None)
        accumulators = [[cgutils.alloca_once_value(builder, zero if scaled else builder.load(target, align=4))
                         for target in row] for row in targets]
        x_rows = [builder.add(x_off, builder.mul(ir.Constant(_I64, r), x_stride)) for r in range(rows)]
        per_strip = vectors // strips
        strip_starts = [builder.add(m_off, builder.mul(ir.Constant(_I64, i), builder.mul(n_in, ld)))
                        for i in range(strips)]
        with cgutils.for_range(builder, n_in) as loop:
            k = loop.index
            row_starts = [builder.add(start, builder.mul(k, ld)) for start in strip_starts]
            weights = []
            for v in range(vectors):
                offset = builder.add(row_starts[v // per_strip], ir.Constant(_I64, v % per_strip * lanes))
                if int8:
                    weights.append(builder.sitofp(builder.load(at(m_data, offset, bytes_type), align=1), vector_type))
                else:
                    weights.append(builder.load(at(m_data, offset, vector_type), align=4))
            for r in range(rows):
                value = builder.load(builder.gep(x_data, [builder.add(x_rows[r], k)]))
                splat = builder.shuffle_vector(
                    builder.insert_element(undefined, value, ir.Constant(_I32, 0)), undefined, splat_mask)
                for v in range(vectors):
                    slot = accumulators[r][v]
                    builder.store(builder.call(fma, [splat, weights[v], builder.load(slot)]), slot)
        if scaled:
            scale_data = data(10, scale_arr)
            scales = [builder.load(at(scale_data, builder.add(scale_off, ir.Constant(_I64, v * lanes)),
                                      vector_type), align=4) for v in range(vectors)]
        for r in range(rows):
            for v in range(vectors):
                total = builder.load(accumulators[r][v])
                if scaled:
                    total = builder.call(fma, [total, scales[v], builder.load(targets[r][v], align=4)])
                builder.store(total, targets[r][v], align=4)
        return context.get_dummy_value()

    return signature, codegen


def stack_floats(count: int):
    """An intrinsic ``() -> float32[count]`` whose data lies in the calling function's stack frame
    (a fixed alloca in its entry block, 64-byte aligned, not cleared), valid until that call
    returns: scratch for kernels that run without numba's runtime and so allocate nothing, and
    outside the plan, so a plan's RAM (and the C runtime's) stays what it was. MLAS packs its
    SGEMM panels of B into such a stack buffer too (``PanelB``, 64 KB)."""
    array_type = types.Array(types.float32, 1, "C")

    @intrinsic
    def scratch(typingctx):
        def codegen(context, builder, sig, args):
            with builder.goto_entry_block():
                buffer = builder.alloca(ir.ArrayType(_F32, count))
                buffer.align = 64
            array = context.make_array(array_type)(context, builder)
            intp = context.get_value_type(types.intp)
            context.populate_array(array, data=builder.bitcast(buffer, _F32.as_pointer()),
                                   shape=[ir.Constant(intp, count)], strides=[ir.Constant(intp, 4)],
                                   itemsize=ir.Constant(intp, 4), meminfo=None)
            return array._getvalue()

        return array_type(), codegen

    return scratch


def copy_block(vectors: int, lanes: int):
    """An intrinsic ``(m, m_off, ld, n_rows, panel)`` copying ``n_rows`` rows of ``vectors *
    lanes`` consecutive float32 weights (row k from m_off + k*ld) into the float32 array
    ``panel``, one row after another: whole vectors per load and store, where a plain loop of an
    unknown width goes one weight at a time."""
    vector_type = ir.VectorType(_F32, lanes)
    width = vectors * lanes

    @intrinsic
    def copy(typingctx, m, m_off, ld, n_rows, panel):
        if m.dtype != types.float32:
            return None
        signature = types.void(m, types.int64, types.int64, types.int64, panel)

        def codegen(context, builder, sig, args):
            m_arr, m_off, ld, n_rows, panel_arr = args
            m_data = context.make_array(sig.args[0])(context, builder, m_arr).data
            panel_data = context.make_array(sig.args[4])(context, builder, panel_arr).data
            with cgutils.for_range(builder, n_rows) as loop:
                source = builder.add(m_off, builder.mul(loop.index, ld))
                target = builder.mul(loop.index, ir.Constant(_I64, width))
                for v in range(vectors):
                    offset = ir.Constant(_I64, v * lanes)
                    pointer = builder.gep(m_data, [builder.add(source, offset)])
                    value = builder.load(builder.bitcast(pointer, vector_type.as_pointer()), align=4)
                    destination = builder.gep(panel_data, [builder.add(target, offset)])
                    builder.store(value, builder.bitcast(destination, vector_type.as_pointer()), align=4)
            return context.get_dummy_value()

        return signature, codegen

    return copy
