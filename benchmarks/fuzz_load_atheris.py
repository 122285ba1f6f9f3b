"""Coverage-guided fuzzing of ``edgeseq_runtime.load`` with atheris (libFuzzer), beyond the
fixed examples of tests/test_fuzz_load.py.

    pip install atheris
    PYTHONPATH=tests python benchmarks/fuzz_load_atheris.py --runs 20000 [--exclude identity_chain,huge_shape]

Each input chooses a seed model and one to three mutations of ``tests/support/onnx_mutations.py``
(libFuzzer's bytes drive every choice, and its coverage of ``edgeseq_runtime`` steers them);
the damaged file is loaded and stepped in this process. Anything but a clean load or a
``ModelError`` stops the run with the traceback, and libFuzzer saves the input as ``crash-*``
(replay it: ``PYTHONPATH=tests python benchmarks/fuzz_load_atheris.py crash-...``). libFuzzer itself
catches crashes and, with ``-timeout``, hangs; the address space is capped as in the sandbox.
``--exclude`` leaves out mutations whose bug is already known, so a run can look past them.
Not part of the test suite: it asserts nothing about time, and prints libFuzzer's own report
("Done N runs in S second(s)").

Unlike the other benchmarks it measures no model that edgeseq exports: what it loads are damaged
files, and it takes its seeds, its mutations and its judge (``load_sandbox``: what counts as a
clean refusal) from ``tests/support/``, so that it and tests/test_fuzz_load.py try the same kinds
of damage and judge the answers alike. Hence ``tests/`` on ``PYTHONPATH``, as pytest puts it.
"""

from __future__ import annotations

import argparse
import importlib.util
import pkgutil
import sys
import tempfile
import warnings
from pathlib import Path

import atheris

if importlib.util.find_spec("support") is None:
    sys.exit("fuzz_load_atheris: the test suite's helpers are not importable; run it as "
             "PYTHONPATH=tests python benchmarks/fuzz_load_atheris.py ...")


def kernel_modules() -> list[str]:
    """The numba kernels' modules: numba compiles their bytecode, which must stay uninstrumented."""
    package = importlib.util.find_spec("edgeseq_runtime")  # found, not imported
    found = pkgutil.iter_modules([str(Path(package.origin).parent / "kernels")])
    return ["edgeseq_runtime.kernels", *(f"edgeseq_runtime.kernels.{m.name}" for m in found)]


with atheris.instrument_imports(include=["edgeseq_runtime"], exclude=kernel_modules()):
    import edgeseq_runtime  # noqa: F401 - imported here to be instrumented

from support.load_sandbox import ACCEPTED, LOADED, limit_address_space, load_and_step  # noqa: E402
from support.onnx_mutations import MUTATIONS, mutated, seed_models  # noqa: E402


class ProvidedChoices:
    """onnx_mutations.Choices taken from libFuzzer's input bytes."""

    def __init__(self, provider: atheris.FuzzedDataProvider):
        self.provider = provider

    def integer(self, low, high):
        return self.provider.ConsumeIntInRange(low, high)

    def pick(self, options):
        return options[self.provider.ConsumeIntInRange(0, len(options) - 1)]


def fuzz_target(seeds: dict, mutations: list[str], path: Path):
    names = sorted(seeds)

    def test_one_input(data: bytes) -> None:
        choose = ProvidedChoices(atheris.FuzzedDataProvider(data))
        seed = seeds[choose.pick(names)]
        chosen = [choose.pick(mutations) for _ in range(choose.integer(1, 3))]
        path.write_bytes(mutated(seed.data, chosen, choose))
        answer = load_and_step(str(path), seed.batch)
        if answer["kind"] not in ACCEPTED:
            raise AssertionError(f"{answer['kind']} after mutations {chosen}:\n{answer['detail']}")

    return test_one_input


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10000, help="inputs to try (default 10000)")
    parser.add_argument("--exclude", default="", help="comma-separated mutations to leave out")
    parser.add_argument("--seconds-per-case", type=int, default=10, help="libFuzzer -timeout")
    args, libfuzzer_args = parser.parse_known_args()
    excluded = set(filter(None, args.exclude.split(",")))
    unknown = excluded - set(MUTATIONS)
    if unknown:
        parser.error(f"unknown mutations {sorted(unknown)}; known: {', '.join(MUTATIONS)}")
    mutations = [name for name in MUTATIONS if name not in excluded]
    warnings.simplefilter("ignore")  # damaged weights make numpy warn on every other input
    with tempfile.TemporaryDirectory() as folder:
        seeds = seed_models(folder)
        path = Path(folder) / "model.onnx"
        for name, seed in seeds.items():  # imports and kernels warm before the address space is capped
            path.write_bytes(seed.data)
            assert load_and_step(str(path), seed.batch)["kind"] == LOADED, name
        limit_address_space()
        atheris.Setup([sys.argv[0], f"-runs={args.runs}", f"-timeout={args.seconds_per_case}", *libfuzzer_args],
                      fuzz_target(seeds, mutations, path))
        atheris.Fuzz()


if __name__ == "__main__":
    main()
