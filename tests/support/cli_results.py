"""Running the ``edgeseq`` command line in process, and what every failure of it must look like."""

from click.testing import CliRunner

from edgeseq.cli import main


def run(*args):
    """``edgeseq ARGS`` in this process; the click Result (stdout and stderr apart)."""
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_one_line_error(result, *fragments):
    """Exit 1, exactly one line on stderr, ``edgeseq: error: ...`` holding every fragment, no traceback."""
    assert result.exit_code == 1, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgeseq: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.output
