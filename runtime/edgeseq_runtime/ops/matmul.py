"""MatMul: against a constant, a DENSE instruction (see dense); of two run-time tensors, a MATMUL
over the broadcast leading axes, each operand's broadcast made whole by an indexed copy."""

import math

import numpy as np

from .. import isa
from ..tensor import Tensor
from .dense import lower_matmul as lower_matmul_constant


def lower_matmul(ctx, node, inputs):
    a, b = inputs
    if not isinstance(b, Tensor):
        return lower_matmul_constant(ctx, node, inputs)
    a, b = ctx.resident(a), b
    if not a.shape or not b.shape:
        ctx.fail(node, f"MatMul needs at least vectors; got shapes {list(a.shape)} and {list(b.shape)}")
    a_addresses = a.addresses().reshape((1,) + a.shape) if len(a.shape) == 1 else a.addresses()
    b_addresses = b.addresses().reshape(b.shape + (1,)) if len(b.shape) == 1 else b.addresses()
    m, k = a_addresses.shape[-2:]
    if b_addresses.shape[-2] != k:
        ctx.fail(node, f"shapes {list(a.shape)} and {list(b.shape)} do not multiply")
    n = b_addresses.shape[-1]
    try:
        lead = np.broadcast_shapes(a_addresses.shape[:-2], b_addresses.shape[:-2])
    except ValueError:
        ctx.fail(node, f"the leading axes of {list(a.shape)} and {list(b.shape)} do not broadcast")
    a_full = ctx.from_addresses(np.broadcast_to(a_addresses, lead + (m, k)))
    b_full = ctx.from_addresses(np.broadcast_to(b_addresses, lead + (k, n)))
    shape = lead + ((m,) if len(a.shape) > 1 else ()) + ((n,) if len(b.shape) > 1 else ())
    c = ctx.new_tensor(shape)
    ctx.builder.emit(isa.MATMUL, a=a_full.offset, b=b_full.offset, c=c.offset, count=math.prod(lead), m=m, k=k, n=n)
    return [c]


HANDLERS = {"MatMul": lower_matmul}
