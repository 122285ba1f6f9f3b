"""The command line as a whole: its help reads as sentences, and a typo in an output path is
caught before any work starts (nothing computed, nothing written)."""

import os
import subprocess
import sys

import click
import numpy as np
import pytest
from click.testing import CliRunner
from support.onnx_builders import build_model

from edgeseq.cli import COMMANDS, main


def test_every_command_has_a_whole_sentence_summary():
    listing = CliRunner().invoke(main, ["--help"], terminal_width=80).stdout
    for name in COMMANDS:
        line = next(line for line in listing.splitlines() if line.strip().startswith(name + " "))
        assert line.rstrip().endswith(".") and not line.rstrip().endswith("..."), line


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_option_says_what_it_does(name):
    command = main.get_command(click.Context(main), name)
    undocumented = [p.name for p in command.params if isinstance(p, click.Option) and not p.help]
    assert not undocumented, f"{name}: options without help: {undocumented}"


@pytest.mark.parametrize("command", [
    ["export", "{model}.pt", "-o", "{missing}/m.onnx"],
    ["quantize", "{model}", "-o", "{missing}/q.onnx"],
    ["stream", "{model}", "--state-file", "{missing}/m.state"],
    ["train", "{model}.csv", "-o", "{missing}/m.pt"],
], ids=lambda c: c[0])
def test_an_output_in_a_missing_folder_is_refused_before_any_work(tmp_path, command):
    built = build_model(tmp_path, "GRU", input_size=2, hidden_size=4, head="matmul")
    missing = tmp_path / "no" / "such"
    args = [a.format(model=built.path, missing=missing) for a in command]
    result = CliRunner().invoke(main, args, input="1,2\n")
    assert result.exit_code == 2 and result.stdout == "", result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and f"{missing}/" in lines[0] and "no such folder" in lines[0], result.stderr
    assert not (tmp_path / "no").exists()


def test_kernels_cached_answers_for_the_cache_numba_would_use(tmp_path):
    """An empty NUMBA_CACHE_DIR holds nothing; this test session's cache, after a step, does."""
    import edgeseq_runtime

    built = build_model(tmp_path, "GRU", input_size=2, hidden_size=4)
    edgeseq_runtime.load(built.path).step(np.zeros(2, np.float32))
    assert edgeseq_runtime.kernels_cached()
    script = "import edgeseq_runtime; print(edgeseq_runtime.kernels_cached())"
    empty = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")})
    assert empty.stdout.strip() == "False", empty.stderr


def test_a_first_step_that_will_compile_says_so_once(tmp_path):
    """As on a new install (kernels_cached answering False), stream says it compiles, once."""
    built = build_model(tmp_path, "GRU", input_size=2, hidden_size=4, head="matmul")
    script = ("import sys, edgeseq_runtime; edgeseq_runtime.kernels_cached = lambda: False; "
              f"from edgeseq.cli import main; sys.argv = ['edgeseq', 'stream', {str(built.path)!r}]; main()")
    result = subprocess.run([sys.executable, "-c", script], input="1,2\n3,4\n", capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("compiling the runtime's kernels") == 1 and len(result.stderr.splitlines()) == 1
    assert len(result.stdout.splitlines()) == 2
