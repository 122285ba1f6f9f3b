"""The instruction set (edgeseq_runtime/isa.py) against its four speakers: the planner that emits
records, the numba kernels and the C runtime that decode them, and the plan header codegen writes.

The kernels and the C runtime are read as source (Python's ast, C's text): a field read by a name
the declaration lacks, a position typed by hand, a declared field no kernel reads, or a header
that says other numbers than the declaration fail here before any model runs.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import edgeseq_runtime
import numpy as np
import pytest
from edgeseq_runtime import isa
from edgeseq_runtime.plan import PlanBuilder

plan_header = pytest.importorskip("edgeseq_export.backends.plan_header")
from edgeseq_export.backends import codegen  # noqa: E402

RUNTIME = Path(edgeseq_runtime.__file__).parent
KERNELS = sorted((RUNTIME / "kernels").glob("*.py"))
PLANNER = [RUNTIME / "lowering.py", RUNTIME / "plan.py", *sorted((RUNTIME / "ops").glob("*.py"))]
RUNTIME_C = (codegen.RUNTIME_SOURCES / "edgeseq_rt.c").read_text()
GROUPS = {group.name: group for group in isa.GROUPS}


def isa_reads(path: Path) -> set[tuple[str, str]]:
    """(group, member) of every ``GROUP.MEMBER`` a module reads, for the groups it imports from isa."""
    tree = ast.parse(path.read_text())
    imported = {alias.asname or alias.name for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and node.module == "isa" for alias in node.names}
    return {(node.value.id, node.attr) for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in imported
            and node.value.id in GROUPS}


def kernel_reads() -> set[tuple[str, str]]:
    return set().union(*(isa_reads(path) for path in KERNELS))


def slots(field) -> int:
    """A field's width, counted here: one slot, or one per field of its operand."""
    return len(field.type.fields) if isinstance(field.type, isa.Operand) else 1


def declared_offsets(fields) -> dict[str, int]:
    """Each field's offset: the widths of the fields before it."""
    return {field.name.upper(): sum(slots(f) for f in fields[:i]) for i, field in enumerate(fields)}


@pytest.mark.parametrize("path", KERNELS, ids=lambda p: p.name)
def test_every_field_a_kernel_reads_is_declared(path):
    for group, member in isa_reads(path):
        assert member in GROUPS[group].enum.__members__, f"{path.name} reads {group}.{member}, which isa does not declare"


@pytest.mark.parametrize("path", KERNELS, ids=lambda p: p.name)
def test_no_kernel_reads_the_code_at_a_typed_position(path):
    """``code[p + 5]`` is a layout typed by hand: kernels read ``code[p + GRU.W]``."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "code":
            numbers = [n.value for n in ast.walk(node.slice) if isinstance(n, ast.Constant) and isinstance(n.value, int)]
            assert not numbers, f"{path.name}:{node.lineno} reads code[{ast.unparse(node.slice)}]"


@pytest.mark.parametrize("declared", [*isa.INSTRUCTIONS, *isa.OPERANDS], ids=lambda d: d.name)
def test_every_declared_field_is_read_by_the_kernels_and_the_c_runtime(declared):
    """... by the C runtime too, unless the declaration says the instruction is not in C yet."""
    reads = kernel_reads()
    for field in declared.fields:
        assert (declared.name, field.name.upper()) in reads, f"no kernel reads {declared.name}.{field.name.upper()}"
        if getattr(declared, "in_c", True):
            assert plan_header.macro(declared.name, field.name.upper()) in RUNTIME_C, \
                f"edgeseq_rt.c never reads {declared.name}'s {field.name}"


def test_every_opcode_is_run_by_the_interpreter_and_the_c_runtime():
    assert {member for group, member in isa_reads(RUNTIME / "kernels" / "interpreter.py") if group == "OPCODE"} \
        == {i.name for i in isa.INSTRUCTIONS}
    cases = set(re.findall(r"case EDGESEQ_OPCODE_(\w+):", RUNTIME_C))
    assert cases == {i.name for i in isa.INSTRUCTIONS if i.in_c}
    assert codegen.ARGUMENT_COUNTS == {i.opcode: sum(slots(f) for f in i.fields) for i in isa.INSTRUCTIONS if i.in_c}
    assert set(codegen.NOT_IN_C.values()) == {i.name for i in isa.INSTRUCTIONS if not i.in_c}


def test_the_c_runtime_reads_no_field_at_a_typed_position():
    for array in ("args", "code", "matrix", "function", "operand", "entry"):
        typed = re.findall(rf"\b{array}\[\d+\]|\b{array} \+ \d+\b", RUNTIME_C)
        assert not typed, f"edgeseq_rt.c reads {typed}"


def test_the_c_runtime_names_only_what_the_plan_header_defines():
    header = (codegen.RUNTIME_SOURCES / "edgeseq_rt.h").read_text()
    defined = set(plan_header.macros()) | set(re.findall(r"#define (EDGESEQ_\w+)", header))
    used = set(re.findall(r"\bEDGESEQ_\w+", RUNTIME_C + header)) - {"EDGESEQ_RT_H", "EDGESEQ_PLAN_H"}
    assert used <= defined, f"undefined: {sorted(used - defined)}"


def parse_plan_header(text: str) -> dict[str, dict[str, int]]:
    """{group: {member: value}} from the header's blocks: a ``/* GROUP: ... */`` line, then its macros."""
    groups, group = {}, None
    for line in text.splitlines():
        start = re.match(r"/\* (\w+): ", line)
        define = re.match(r"#define EDGESEQ_(\w+) +(-?\d+) /\* .* \*/$", line)
        if start:
            group = groups.setdefault(start.group(1), {})
        elif define:
            prefix = f"{list(groups)[-1]}_"
            assert define.group(1).startswith(prefix) and define.group(1)[len(prefix):] not in group, line
            group[define.group(1)[len(prefix):]] = int(define.group(2))
    return groups


def test_the_plan_header_round_trips():
    """Parsed back, the written header gives every opcode, field offset, slot, status and kind
    of the declaration, each offset counted here from the fields' widths."""
    parsed = parse_plan_header(plan_header.render("/* banner */"))
    assert parsed == {name: {m.name: m.value for m in group.enum} for name, group in GROUPS.items()}
    assert parsed["OPCODE"] == {i.name: i.opcode for i in isa.INSTRUCTIONS}
    for declared in [*isa.INSTRUCTIONS, *isa.OPERANDS]:
        assert parsed[declared.name] == declared_offsets(declared.fields), declared.name
    assert parsed["STATUS"] == dict(OK=0, NOT_FINITE=1, BAD_TOKEN=2, NULL_POINTER=3, BAD_INDEX=4, STATE_NOT_FINITE=5,
                                  MISSING_FUNCTION=6)
    macros = [f"EDGESEQ_{name}_{member}" for name, members in parsed.items() for member in members]
    assert len(set(macros)) == len(macros) and set(macros) == set(plan_header.macros())


def test_codegen_writes_the_plan_header_beside_the_runtime(tmp_path):
    from support.codegen_builds import MODELS, write_model

    generated = codegen.generate(write_model(MODELS[0], tmp_path), tmp_path / "c", "m")
    assert tmp_path / "c" / plan_header.FILENAME in generated.files
    text = (tmp_path / "c" / plan_header.FILENAME).read_text()
    assert text.startswith("/* Generated by edgeseq codegen from edgeseq_runtime/isa.py; do not edit")
    assert '#include "edgeseq_plan.h"' in (tmp_path / "c" / "edgeseq_rt.h").read_text()


@pytest.mark.parametrize("path", PLANNER, ids=lambda p: p.name)
def test_the_planner_imports_no_kernel_module(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            assert "kernels" not in (node.module or ""), f"{path.name} imports {node.module}"


def test_scratch_is_declared_with_the_field_that_holds_it():
    for instruction in isa.INSTRUCTIONS:
        has_field = any(f.type is isa.SCRATCH for f in instruction.fields)
        assert has_field == (instruction.scratch is not None), instruction.name


def copy_fields(builder: PlanBuilder) -> dict:
    return dict(y=builder.alloc(4), n=4, table=builder.table([0, 1, 2, 3]))


@pytest.mark.parametrize("change, message", [
    (dict(n=None), r"COPY: missing fields \['n'\]"),
    (dict(size=4), r"COPY: .*unknown fields \['size'\]"),
    (dict(n=-1), r"COPY\.n: -1 is below 0"),
    (dict(n=2.5), r"COPY\.n: 2\.5 is not an integer"),
])
def test_emit_checks_every_field(change, message):
    builder = PlanBuilder()
    fields = copy_fields(builder)
    fields.update(change)
    fields = {name: value for name, value in fields.items() if value is not None}
    with pytest.raises(ValueError, match=message):
        builder.emit(isa.COPY, **fields)


def test_emit_checks_operands_and_kinds():
    builder = PlanBuilder()
    fields = dict(x=builder.alloc(8), y=builder.alloc(8), rows=1, n_in=8, n_out=8, bias=-1)
    with pytest.raises(ValueError, match=r"DENSE\.w: expected a MATRIX operand of 3 ints"):
        builder.emit(isa.DENSE, **fields, w=[isa.MATRIX_KIND.FLOAT32, 0])
    with pytest.raises(ValueError, match=r"DENSE\.w\.kind: 7 is not one of 0 \(FLOAT32\)"):
        builder.emit(isa.DENSE, **fields, w=[7, 0, -1])
    with pytest.raises(ValueError, match=r"BINARY\.function: 99 is not one of 0 \(ADD\)"):
        builder.emit(isa.BINARY, function=99, a=[isa.SOURCE.ARENA, 0, 1], b=[isa.SOURCE.ARENA, 0, 1], c=0, n=1)


def test_emit_reserves_the_declared_scratch():
    builder = PlanBuilder()
    before = builder.alloc(1)
    h = builder.alloc(3 * 5)
    function = [isa.ACTIVATION_KIND.TANH, builder.constant([0.0, 0.0])]
    builder.emit(isa.GRU, x=before, h=h, input_size=1, hidden_size=5, batch=3,
                 w=builder.matrix(np.zeros((1, 15)), out_axis=1), r=builder.matrix(np.zeros((5, 15)), out_axis=1),
                 bx=builder.constant(np.zeros(15)), bh=builder.constant(np.zeros(5)), act_f=function, act_g=function,
                 clip=-1, linear_before_reset=0)
    after = builder.alloc(1)
    plan = builder.build(before, 1, after, 1, 0)
    record = plan.code[isa.HEADER_SIZE:]
    scratch = record[isa.RECORD.FIELDS + isa.GRU.SCRATCH]
    assert record[isa.RECORD.OPCODE] == isa.OPCODE.GRU
    # regions live at once do not meet: the scratch is clear of X and H
    for other, size in ((record[isa.RECORD.FIELDS + isa.GRU.X], 1), (record[isa.RECORD.FIELDS + isa.GRU.H], 3 * 5)):
        assert scratch >= other + size or scratch + 7 * 3 * 5 <= other
    assert scratch + 7 * 3 * 5 <= plan.arena.size
