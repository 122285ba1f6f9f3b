"""``edgeseq_plan.h``: the plan format of ``edgeseq_runtime.isa`` as C macros, which the C runtime
decodes plans with.

Every group of ``isa.GROUPS`` (header slots, record layout, status codes, kinds, operand and
instruction layouts, opcodes) becomes ``#define EDGESEQ_<GROUP>_<MEMBER> value``, so C reads
``args[EDGESEQ_GRU_W]`` where Python reads ``code[p + GRU.W]``, and the two cannot drift.
"""

from __future__ import annotations

from edgeseq_runtime import isa

from .cgen import check_identifier, comment_text

FILENAME = "edgeseq_plan.h"
PREFIX = "EDGESEQ_"


def macro(group: str, member: str) -> str:
    """The C name of a member of an isa group.

    >>> macro("GRU", "W")
    'EDGESEQ_GRU_W'
    """
    return f"{PREFIX}{group}_{member}"


def macros() -> dict[str, int]:
    """Every macro of the header with its value, from the declaration (each a checked C name)."""
    return {check_identifier(macro(g.name, m.name), "plan macro"): m.value for g in isa.GROUPS for m in g.members}


def render(banner: str) -> str:
    """The header's text; ``banner`` is its first line (the generated-file notice)."""
    blocks = []
    for group in isa.GROUPS:
        width = max(len(macro(group.name, m.name)) for m in group.members)
        lines = [f"/* {group.name}: {comment_text(group.meaning)} */"]
        lines += [f"#define {macro(group.name, m.name):<{width}} {m.value} /* {comment_text(m.meaning)} */"
                  for m in group.members]
        blocks.append("\n".join(lines))
    body = "\n\n".join(blocks)
    return f"""{banner}
/*
 * The plan format that edgeseq_rt.c decodes, declared in edgeseq_runtime/isa.py: a plan's code is
 * a header (HEADER slots), instruction records [opcode, length, fields...] (RECORD) and index
 * tables. A record's fields start at EDGESEQ_RECORD_FIELDS; EDGESEQ_<INSTRUCTION>_<FIELD> is a
 * field's offset among them, EDGESEQ_<OPERAND>_<FIELD> the offset of a slot within an operand
 * (MATRIX, FUNCTION, BROADCAST).
 */
#ifndef EDGESEQ_PLAN_H
#define EDGESEQ_PLAN_H

{body}

#endif /* EDGESEQ_PLAN_H */
"""
