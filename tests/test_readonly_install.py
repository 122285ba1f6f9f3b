"""A read-only install: the runtime imports and steps, with numba's cache put somewhere writable.

A copy of the runtime sits in a folder mounted read-only (in a user namespace of its own, so
that root cannot write it either; as another user, ``chmod`` does it), with a home folder that
is read-only too: numba can write neither beside the sources nor in ``~/.cache``.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import edgeseq_runtime
import numpy as np
import pytest
from support.onnx_builders import build_model

PROBE = """
import os, sys
sys.path.insert(0, sys.argv[1])
import edgeseq_runtime
assert edgeseq_runtime.__file__.startswith(sys.argv[1]), edgeseq_runtime.__file__
print(os.environ.get("NUMBA_CACHE_DIR"))
if len(sys.argv) > 2:
    import numpy as np
    print(edgeseq_runtime.load(sys.argv[2]).step(np.ones(3, np.float32)).tolist())
"""


@pytest.fixture
def readonly_install(tmp_path):
    """(run, install folder): ``run(env, *args)`` runs PROBE with the install read-only."""
    install = tmp_path / "install"
    shutil.copytree(Path(edgeseq_runtime.__file__).parent, install / "edgeseq_runtime",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (install / "home").mkdir()
    if os.geteuid() == 0:
        unshare = shutil.which("unshare")
        probe = subprocess.run([unshare or "unshare", "-rm", "true"], capture_output=True) if unshare else None
        if not probe or probe.returncode:
            pytest.skip("root needs a user namespace (unshare -rm) to mount a folder read-only")
        mount = f"mount --bind {install} {install} && mount -o remount,bind,ro {install} && exec \"$@\""
        prefix = [unshare, "-rm", "sh", "-c", mount, "sh"]
    else:
        subprocess.run(["chmod", "-R", "a-w", str(install)], check=True)
        prefix = []

    def run(env, *args):
        env = {**{k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME")},
               "HOME": str(install / "home"), **env}
        return subprocess.run([*prefix, sys.executable, "-c", PROBE, str(install), *map(str, args)], env=env,
                              capture_output=True, text=True, timeout=300)

    yield run, install
    subprocess.run(["chmod", "-R", "u+w", str(install)], check=True)


def test_without_a_writable_home_the_cache_goes_to_a_private_temp_folder(readonly_install, tmp_path):
    run, _ = readonly_install
    (tmp_path / "tmp").mkdir()
    result = run({"TMPDIR": str(tmp_path / "tmp")})
    assert result.returncode == 0, result.stderr
    cache = tmp_path / "tmp" / f"edgeseq-numba-{os.getuid()}"
    assert result.stdout.splitlines() == [str(cache)]
    assert oct(cache.stat().st_mode & 0o777) == oct(0o700)


def test_a_temp_folder_others_can_write_is_not_used(readonly_install, tmp_path):
    run, _ = readonly_install
    planted = tmp_path / "tmp" / f"edgeseq-numba-{os.getuid()}"
    planted.mkdir(parents=True)
    planted.chmod(0o777)  # as another user could have left it, with pickles in it
    result = run({"TMPDIR": str(tmp_path / "tmp")})
    assert str(planted) not in result.stdout


def test_a_users_cache_setting_is_kept_and_numbas_own_fallback_left_alone(readonly_install, tmp_path):
    run, _ = readonly_install
    mine = run({"NUMBA_CACHE_DIR": str(tmp_path / "mine")})
    assert mine.returncode == 0 and mine.stdout.splitlines() == [str(tmp_path / "mine")], mine.stderr
    xdg = run({"XDG_CACHE_HOME": str(tmp_path / "xdg")})  # numba writes $XDG_CACHE_HOME/numba itself
    assert xdg.returncode == 0 and xdg.stdout.splitlines() == ["None"], xdg.stderr


@pytest.mark.slow
def test_a_readonly_install_steps_like_the_installed_runtime(readonly_install, tmp_path):
    run, _ = readonly_install
    built = build_model(tmp_path, "GRU", input_size=3, hidden_size=4, head="matmul")
    (tmp_path / "tmp").mkdir()
    result = run({"TMPDIR": str(tmp_path / "tmp")}, built.path)  # compiles every kernel: ~20 s
    assert result.returncode == 0, result.stderr
    expected = edgeseq_runtime.load(built.path).step(np.ones(3, np.float32)).tolist()
    assert result.stdout.splitlines()[1] == str(expected)
    assert any((tmp_path / "tmp").rglob("*.nbi"))
