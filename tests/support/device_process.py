"""A fresh Python process as a device install has it: the named packages cannot be imported."""

import subprocess
import sys
import textwrap


def run_without(packages: tuple[str, ...], body: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``body`` (Python source, dedented) in a new interpreter where importing any of
    ``packages`` (or their submodules) raises ImportError; its output captured as text."""
    script = textwrap.dedent(f"""
        import importlib.abc, sys
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {packages!r}:
                    raise ImportError(name + " is not installed on the device")
        sys.meta_path.insert(0, Block())
    """) + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout)
