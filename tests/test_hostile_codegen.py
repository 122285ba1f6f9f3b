"""Hostile names in an ONNX model: ``edgeseq codegen`` writes them into C only as checked data.

The C preprocessor splices a backslash-newline (or the trigraph ``??/`` and a newline) before it
looks for the end of a comment, so a state input named ``*\\<newline>/ int evil = 1; /*``, written
into a comment as it is, closes the comment and compiles into the firmware. Each payload below is
given to the state inputs, the nodes and the file name of a model; the generated C must compile
with every warning an error, and nothing of the payload may be left once comments are gone.
"""

import subprocess

import onnx
import pytest
from support.codegen_builds import C99_WARNINGS, GCC, require
from support.onnx_builders import build_model

codegen = pytest.importorskip("edgeseq_export.backends.codegen")

CODE = "int evil = 1;"
PAYLOADS = {
    "splice": f"*\\\n/ {CODE} /*",
    "splice_both_ends": f"*\\\n/ {CODE} /\\\n*",  # the comment reopens: the rest of the file compiles
    "splice_crlf": f"*\\\r\n/ {CODE} /*",
    "splice_after_space": f"*\\ \n/ {CODE} /*",
    "trigraph_splice": f"*??/\n/ {CODE} /*",
    "close": f"*/ {CODE} /*",
    "close_at_the_end": f"x */ {CODE} /",
    "nul_and_non_ascii": f"\u00e9\x00*\u2028/ {CODE} /*\U0001F600",
    "long_then_splice": "x" * 100_000 + f"*\\\n/ {CODE} /*",
    "splice_then_long": f"*\\\n/ {CODE} /*" + "x" * 100_000,
}


def hostile_model(directory, payload: str):
    """A 1-layer LSTM whose state inputs and nodes are named after ``payload``, saved under a file
    name made of it (what a file name can hold: no '/', no NUL, at most 200 characters). The two
    state inputs define ``evil0`` and ``evil1``, which do not clash when both compile."""
    built = build_model(directory, "LSTM", input_size=3, hidden_size=4, output_size=2, head="matmul")
    model = onnx.load(built.path)
    graph = model.graph
    renames = {value.name: payload.replace("evil", f"evil{index}") for index, value in enumerate(graph.input[1:])}
    for value in [*graph.input, *graph.output, *graph.value_info]:
        value.name = renames.get(value.name, value.name)
    for index, node in enumerate(graph.node):
        node.input[:] = [renames.get(name, name) for name in node.input]
        node.name = f"{payload}{index}"
    stem = payload.replace("/", "_").replace("\x00", "")[:200]
    path = directory / f"{stem}.onnx"
    onnx.save(model, path)
    return path


def compile_c(source, *flags) -> subprocess.CompletedProcess:
    command = [GCC.cc, *C99_WARNINGS, "-Wtrigraphs", *flags, str(source)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("payload", PAYLOADS.values(), ids=PAYLOADS.keys())
def test_hostile_names_stay_inside_comments(payload, tmp_path):
    require(GCC.cc)
    model = hostile_model(tmp_path, payload)
    codegen.generate(model, tmp_path / "c", "m")
    for generated in ("m.h", "m.c"):
        text = (tmp_path / "c" / generated).read_text()
        assert all(" " <= c <= "~" and c != "\\" for line in text.splitlines() for c in line), generated
        assert "??" not in text, generated
    built = compile_c(tmp_path / "c" / "m.c", "-c", "-o", str(tmp_path / "m.o"))
    assert built.returncode == 0, built.stderr
    preprocessed = compile_c(tmp_path / "c" / "m.c", "-E")
    assert preprocessed.returncode == 0, preprocessed.stderr
    assert "evil" not in preprocessed.stdout


@pytest.mark.parametrize("payload", [PAYLOADS["splice"], PAYLOADS["nul_and_non_ascii"]],
                         ids=["splice", "non_ascii"])
def test_a_name_made_from_a_hostile_file_name_is_an_identifier(payload, tmp_path):
    require(GCC.cc)
    generated = codegen.generate(hostile_model(tmp_path, payload), tmp_path / "c")
    assert generated.name.isidentifier() and generated.name.isascii(), generated.name
    built = compile_c(tmp_path / "c" / f"{generated.name}.c", "-c", "-o", str(tmp_path / "m.o"))
    assert built.returncode == 0, built.stderr
