"""Matrix views of the plan's flat arrays, made the cheap way.

numba's ``reshape`` calls a C helper for every view it makes (about 15 ns here); a step of a
small model makes a dozen views, so that alone would cost as much as a layer's gates. The plan
fixes every region's offset and size when the model is loaded (and checks them then), so a view
needs no checks at run time: ``matrix`` fills in the array structure directly.
"""

from numba import types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.arrayobj import make_array, populate_array


@intrinsic
def matrix(typingctx, flat, offset, rows, cols):
    """flat[offset:offset + rows*cols] as a C-contiguous (rows, cols) view (no copy, no checks)."""
    if not (isinstance(flat, types.Array) and flat.ndim == 1 and flat.layout == "C"):
        return None
    view_type = types.Array(flat.dtype, 2, "C")
    signature = view_type(flat, types.intp, types.intp, types.intp)

    def codegen(context, builder, sig, args):
        flat_value, offset, rows, cols = args
        source = make_array(sig.args[0])(context, builder, flat_value)
        view = make_array(view_type)(context, builder)
        itemsize = context.get_constant(types.intp, context.get_abi_sizeof(context.get_data_type(flat.dtype)))
        populate_array(view, data=cgutils.pointer_add(builder, source.data, builder.mul(offset, itemsize)),
                       shape=[rows, cols], strides=[builder.mul(cols, itemsize), itemsize],
                       itemsize=itemsize, meminfo=source.meminfo, parent=source.parent)
        return view._getvalue()

    return signature, codegen


@intrinsic
def items(typingctx, data, offset, count, dtype):
    """The ``count`` items of ``dtype`` that start ``offset`` bytes into the uint8 array ``data``, as
    a C-contiguous 1-D view (no copy, no checks): numba's ``view`` compiles a check of its own for
    every dtype (0.3 s of an empty cache's start, for the three parts of a packed model)."""
    if not (isinstance(data, types.Array) and data.ndim == 1 and data.layout == "C" and data.dtype == types.uint8
            and isinstance(dtype, types.NumberClass)):
        return None
    view_type = types.Array(dtype.dtype, 1, "C")
    signature = view_type(data, types.intp, types.intp, dtype)

    def codegen(context, builder, sig, args):
        data_value, offset, count, _ = args
        source = make_array(sig.args[0])(context, builder, data_value)
        view = make_array(view_type)(context, builder)
        itemsize = context.get_constant(types.intp, context.get_abi_sizeof(context.get_data_type(view_type.dtype)))
        start = builder.bitcast(cgutils.pointer_add(builder, source.data, offset), view.data.type)
        populate_array(view, data=start, shape=[count], strides=[itemsize], itemsize=itemsize,
                       meminfo=source.meminfo, parent=source.parent)
        return view._getvalue()

    return signature, codegen
