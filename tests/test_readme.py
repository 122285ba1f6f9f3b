"""Every command in the README runs as written."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(after: str, language: str = "") -> list[str]:
    section = README[README.index(after):]
    return re.findall(rf"```{language}\n(.*?)```", section, flags=re.S)


def test_install_and_test_commands_are_the_ones_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text()
    indented = [line.strip() for line in README.splitlines()[:20] if line.startswith("    ")]
    install, tests = indented
    assert install.endswith("&& edgeseq demo")
    assert "pip install torch==2.13.0 -e ./runtime -e ./export" in install
    assert re.search(r"pip install torch==2.13.0 -e ./runtime -e ./export -e \"\.\[test(,plot)?(,ray)?\]\"", ci)
    assert tests.split("&& ")[-1] in ci


@pytest.mark.slow  # trains, exports, quantizes, streams, benchmarks and generates C
def test_the_tour_runs_as_written(tmp_path):
    (tmp_path / "edgeseq").mkdir()
    os.symlink(ROOT / "edgeseq" / "data", tmp_path / "edgeseq" / "data")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    shell = _blocks("## A tour")[0]
    python = "\n".join(_blocks("## A tour", "python"))  # the tour's and every later section's
    for line in shell.strip().splitlines():
        command = line.split("  #")[0].strip()
        result = subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"{command}\n{result.stderr}"
    assert (tmp_path / "lstm_c" / "forecaster.h").is_file()
    assert len((tmp_path / "lstm.state").read_bytes()) > 0
    # -I: the folder made above must not shadow the installed edgeseq package
    result = subprocess.run([sys.executable, "-I", "-c", python], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
