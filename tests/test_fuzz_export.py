"""Fuzzing ``edgeseq export``'s readers: damaged .pt files are read or refused with an
``EdgeseqError``, never another exception, a crash or a hang."""

import multiprocessing
import warnings

import pytest
import torch
from edgeseq_export.pytorch.models import SequenceModel, save_checkpoint
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

CASES = 100


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = torch.nn.GRU(3, 8)
        self.head = torch.nn.Linear(8, 2)

    def forward(self, x):
        return self.head(self.rnn(x)[0])


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    """One file of each form MODEL.pt may take, as bytes."""
    folder = tmp_path_factory.mktemp("pt")
    torch.manual_seed(0)
    net = Net().eval()
    torch.save(net.state_dict(), folder / "state_dict.pt")
    save_checkpoint(SequenceModel(cell="lstm", input_size=2, hidden_size=6), folder / "checkpoint.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.trace(net, torch.zeros(4, 1, 3)), folder / "script.pt")
    return {path.stem: path.read_bytes() for path in folder.iterdir()}


def _read(path, queue):
    """In a child process: read the file as export does, trusting its code (so that damaged
    TorchScript reaches torch's reader); report how it ended."""
    from edgeseq_export.pytorch.layers import ReadOptions
    from edgeseq_export.pytorch.sources import read_source
    from edgeseq_runtime import EdgeseqError
    try:
        read_source(path, ReadOptions(trust_code=True))
        queue.put("read")
    except (EdgeseqError, OSError) as e:
        queue.put(f"refused: {type(e).__name__}")
    except BaseException as e:  # noqa: BLE001 - the finding
        queue.put(f"BUG {type(e).__name__}: {e}")


@pytest.fixture(scope="module")
def reader():
    context = multiprocessing.get_context("fork")

    def read(path) -> str:
        queue = context.Queue()
        child = context.Process(target=_read, args=(str(path), queue))
        child.start()
        child.join(60)
        if child.is_alive():
            child.kill()
            return "BUG hang"
        return queue.get() if not queue.empty() else f"BUG crash (exit {child.exitcode})"
    return read


@pytest.mark.slow  # a hundred damaged files through torch's readers
@settings(max_examples=CASES, deadline=None, derandomize=True, database=None, phases=[Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_damaged_pt_files_are_read_or_refused(seeds, reader, tmp_path, data):
    form = data.draw(st.sampled_from(sorted(seeds)))
    raw = bytearray(seeds[form])
    damage = data.draw(st.sampled_from(["truncate", "flip", "garbage_tail", "zero_block"]))
    at = data.draw(st.integers(0, len(raw) - 1))
    if damage == "truncate":
        raw = raw[:at]
    elif damage == "flip":
        for offset in data.draw(st.lists(st.integers(0, len(raw) - 1), min_size=1, max_size=8)):
            raw[offset] ^= 1 << data.draw(st.integers(0, 7))
    elif damage == "garbage_tail":
        raw = raw[:at] + bytes(data.draw(st.binary(min_size=1, max_size=64)))
    else:
        raw[at:at + 64] = bytes(len(raw[at:at + 64]))
    path = tmp_path / f"{form}.pt"
    path.write_bytes(bytes(raw))
    outcome = reader(path)
    assert not outcome.startswith("BUG"), f"{form}, {damage} at {at}: {outcome}"
