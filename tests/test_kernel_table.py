"""A model compiles only the kernels its instructions run: the interpreter calls each through the
model's table of addresses (kernels.linking), and a kernel missing from it is an error, not a
jump to address zero. The matrix product reaches each kind of matrix through its product's one
address in the process (linking.call_linked), linked for the kinds the plan holds."""

import subprocess
import sys
import textwrap

import edgeseq_runtime
import numpy as np
import pytest
from edgeseq_runtime.isa import HEADER, MATRIX_KIND, OPCODE, RECORD
from edgeseq_runtime.kernels import linking
from edgeseq_runtime.kernels.interpreter import KERNELS, PROJECTION, execute
from edgeseq_runtime.kernels.matvec import PRODUCTS
from support.onnx_builders import build_model


def _opcodes(code) -> set[int]:
    found, pc = set(), int(code[HEADER.START])
    while pc < code[HEADER.END]:
        found.add(int(code[pc + RECORD.OPCODE]))
        pc += int(code[pc + RECORD.LENGTH])
    return found


def test_the_table_holds_the_kernels_of_the_plans_instructions_and_no_others(tmp_path):
    built = build_model(tmp_path, "GRU", input_size=3, hidden_size=16, head="matmul")  # 48 gate rows: run projects
    model = edgeseq_runtime.load(built.path)
    used = _opcodes(model._code)
    assert OPCODE.GRU in used and OPCODE.LSTM not in used
    assert {op for op, at in enumerate(model._kernels) if at} == used  # run adds PROJECTION when it needs it
    model.run(built.random_steps(np.random.default_rng(0), 5))
    assert model._kernels[PROJECTION]


def test_a_fresh_process_loads_only_the_kernels_its_model_uses(tmp_path):
    built = build_model(tmp_path, "GRU", input_size=3, hidden_size=4, head="matmul")
    script = textwrap.dedent(f"""
        import numpy as np, edgeseq_runtime
        from edgeseq_runtime.kernels.interpreter import KERNELS
        m = edgeseq_runtime.load({str(built.path)!r})
        m.step(np.zeros(3, np.float32))
        print(sorted(op.name for op, kernel in KERNELS.items() if kernel.overloads))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    names = {OPCODE(op).name for op in _opcodes(edgeseq_runtime.load(built.path)._code)}
    assert result.stdout.split("\n")[0] == str(sorted(names))


def test_a_kernel_missing_from_the_table_raises_instead_of_jumping_to_zero(tmp_path):
    built = build_model(tmp_path, "GRU", input_size=3, hidden_size=4, head="matmul")
    model = edgeseq_runtime.load(built.path)
    x, y = np.zeros(3, np.float32), np.empty(model.output_size, np.float32)
    model.step(np.ones(3, np.float32))
    before = model.get_state()
    with pytest.raises(RuntimeError, match="a recurrent kernel is not in this model's kernel table"):
        execute(model._model, model._arena, x, y, 1, np.empty(0, np.float32), np.zeros_like(model._kernels))
    for name, value in model.get_state().items():
        np.testing.assert_array_equal(value, before[name])


@pytest.mark.parametrize("cell, head", [("GRU", "matmul"), ("LSTM", "gemm"), ("RNN", "matmul")])
def test_the_kernels_multiply_through_the_products_one_address(tmp_path, cell, head):
    built = build_model(tmp_path, cell, input_size=3, hidden_size=8, head=head)  # gates FLOAT32, input-major
    model = edgeseq_runtime.load(built.path)
    steps = built.random_steps(np.random.default_rng(1), 3)
    model.step(steps[0])
    before = model.get_state()
    _, address_cell = linking._cells[PRODUCTS[MATRIX_KIND.FLOAT32]]
    at, address_cell.value = address_cell.value, 0
    try:
        with pytest.raises(RuntimeError, match="_float32 has no address"):
            model.step(steps[1])
    finally:
        address_cell.value = at
    for name, value in model.get_state().items():
        np.testing.assert_array_equal(value, before[name])
    assert np.array_equal(model.run(steps[1:]), edgeseq_runtime.load(built.path).run(steps)[1:])


def test_a_fresh_process_compiles_only_the_products_its_model_takes(tmp_path):
    # 24 gate rows, input-major FLOAT32, that run projects ahead; a head of 5, FLOAT32_BY_OUTPUT
    built = build_model(tmp_path, "GRU", input_size=3, hidden_size=8, head="matmul")
    script = textwrap.dedent(f"""
        import numpy as np, edgeseq_runtime
        from edgeseq_runtime.kernels.matvec import LINKED
        m = edgeseq_runtime.load({str(built.path)!r})
        m.step(np.zeros(3, np.float32))
        print(sorted(f.__name__ for f in LINKED if f.overloads))
        m.run(np.zeros((6, 3), np.float32))  # its input projections take 6 rows at once
        print(sorted(f.__name__ for f in LINKED if f.overloads))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    one_row = ["_float32", "_float32_by_output", "project"]
    assert result.stdout.split("\n")[:2] == [str(one_row), str(sorted([*one_row, "_float32_strips", "_float32_packed"]))]


def test_every_kind_of_matrix_has_a_product():
    assert set(PRODUCTS) == set(MATRIX_KIND)


def test_every_instruction_has_a_kernel_in_the_table():
    assert set(KERNELS) == set(OPCODE)
    assert PROJECTION > max(OPCODE)
