"""Loading a hostile model file ends in a model or a ModelError, quickly and in bounded memory.

Folding:

A few hundred bytes of ONNX can ask constant folding for gigabytes (a Pad, OneHot, Resize or
broadcast Mul of 2**31 elements), 10**12 multiply-adds (a Conv), a Loop of 10**12 iterations or
one whose condition never turns false, a Scan over millions of rows, subgraphs nested deeper than
anyone needs, or random values that would change the model at each load. Each case is loaded in
a ``LoadSandbox`` worker (time limit, address-space cap, peak-memory bound): it must be refused
with a ModelError that names the offending node. Control flow within the budget still folds,
to the numbers of ONNX's reference evaluator.

Reading: a file of millions of empty protobuf entries (each 2 bytes on disk, hundreds once
parsed), and external data that claims more bytes than the tensor's dims (a sparse file of
gigabytes), that escapes the model's folder, or that is a FIFO, a device or a directory.
"""

import os

import edgeseq_runtime
import numpy as np
import onnx
import pytest
from onnx import TensorProto
from support.load_sandbox import MODEL_ERROR, LoadSandbox
from support.onnx_builders import build_model
from support.onnx_mutations import CONTROL_FLOW_BOMBS, FOLD_BOMBS, insert_fold_bomb, protobuf_field_bomb

SECONDS_PER_CASE = 30  # a refusal takes well under a second; a hang is killed after this (a busy machine is slow)

HOSTILE_SIZES = {  # bomb -> its size: elements, multiply-adds, iterations or nesting levels
    **{kind: 2**31 for kind in FOLD_BOMBS},
    "Conv": 10**12, "MatMul": 2**33, "Einsum": 2**34,
    "Loop": 10**12, "LoopForever": 0, "NestedLoop": 4096**2, "Scan": 1 << 22, "If": 2**31, "NestedIf": 24,
}
WITHIN_BUDGET = {"Loop": 7, "Scan": 5, "If": 4, "NestedIf": 3, "NestedLoop": 9}  # results broadcast into [1, 1, 5]


@pytest.fixture(scope="module")
def sandbox():
    with LoadSandbox(seconds_per_case=SECONDS_PER_CASE) as box:
        yield box


def with_bomb(tmp_path, kind: str, size: int):
    """A GRU model whose output adds the result of bomb ``kind``; (its Built, the bomb's node prefix)."""
    built = build_model(tmp_path, "GRU", head="matmul", filename=f"{kind}.onnx")
    prefix = insert_fold_bomb(built.model.graph, 0, kind, size)
    onnx.save(built.model, built.path)
    return built, prefix


@pytest.mark.parametrize("kind", [*FOLD_BOMBS, *CONTROL_FLOW_BOMBS])
def test_refuses_a_constant_computation_beyond_the_budget_before_running_it(tmp_path, sandbox, kind):
    built, prefix = with_bomb(tmp_path, kind, HOSTILE_SIZES[kind])
    outcome = sandbox.load(built.path.read_bytes())
    assert outcome.kind == MODEL_ERROR, f"{outcome.kind}: {outcome.detail}"
    assert prefix in outcome.detail and "\n" not in outcome.detail, outcome.detail


@pytest.mark.parametrize("kind", sorted(WITHIN_BUDGET))
def test_folds_control_flow_within_the_budget_like_the_reference_evaluator(tmp_path, kind):
    built, _ = with_bomb(tmp_path, kind, WITHIN_BUDGET[kind])
    X = np.random.default_rng(0).standard_normal((6, built.input_size)).astype(np.float32)
    expected = built.reference_onnx(X)
    np.testing.assert_allclose(edgeseq_runtime.load(built.path).run(X), expected, rtol=1e-5, atol=1e-5)


def test_refuses_millions_of_empty_protobuf_entries_before_parsing_them(tmp_path, sandbox):
    built = build_model(tmp_path, "GRU", head="matmul")
    outcome = sandbox.load(protobuf_field_bomb(built.path.read_bytes(), 10 << 20))
    assert outcome.kind == MODEL_ERROR and "protobuf fields" in outcome.detail, f"{outcome.kind}: {outcome.detail}"


SPARSE_BYTES = 4 << 30  # a sparse file: it takes no disk space, but reads as 4 GiB of zeros

EXTERNAL_DATA = {  # case -> (external_data entries, dims to claim or None, what to put in the folder)
    "length_beyond_dims_in_a_sparse_file": ({"location": "sparse.bin", "length": str(SPARSE_BYTES)}, None, "sparse"),
    "huge_dims_without_length": ({"location": "sparse.bin"}, [1 << 30], "sparse"),
    "offset_beyond_the_file": ({"location": "small.bin", "offset": str(10**12)}, None, "small"),
    "short_file": ({"location": "small.bin", "offset": "60"}, None, "small"),
    "parent_folder": ({"location": "../outside.bin"}, None, "outside"),
    "absolute_path": ({"location": "/etc/hostname"}, None, None),
    "symlink_out_of_the_folder": ({"location": "link.bin"}, None, "link_outside"),
    "symlink_to_dev_zero": ({"location": "zero.bin"}, None, "link_zero"),
    "fifo": ({"location": "fifo.bin"}, None, "fifo"),
    "directory": ({"location": "."}, None, None),
}


def _external_data_case(tmp_path, entries: dict, dims, content):
    """A GRU model whose W initializer's data lives in another file, as ``entries`` say."""
    folder = tmp_path / "model"
    folder.mkdir()
    (tmp_path / "outside.bin").write_bytes(os.urandom(4096))
    if content == "sparse":
        with open(folder / "sparse.bin", "wb") as f:
            f.truncate(SPARSE_BYTES)
    elif content == "small":
        (folder / "small.bin").write_bytes(os.urandom(64))
    elif content == "link_outside":
        (folder / "link.bin").symlink_to(tmp_path / "outside.bin")
    elif content == "link_zero":
        (folder / "zero.bin").symlink_to("/dev/zero")
    elif content == "fifo":
        os.mkfifo(folder / "fifo.bin")
    built = build_model(folder, "GRU", head="matmul")
    weight = next(t for t in built.model.graph.initializer if t.name.endswith("_W"))
    weight.ClearField("raw_data")
    weight.data_location = TensorProto.EXTERNAL
    if dims is not None:
        del weight.dims[:]
        weight.dims.extend(dims)
    for key, value in entries.items():
        weight.external_data.add(key=key, value=value)
    onnx.save(built.model, built.path)
    return built.path


@pytest.mark.parametrize("case", EXTERNAL_DATA.values(), ids=EXTERNAL_DATA.keys())
def test_refuses_external_data_beyond_its_tensor_or_its_folder_without_reading_it(tmp_path, sandbox, case):
    outcome = sandbox.load_file(_external_data_case(tmp_path, *case))
    assert outcome.kind == MODEL_ERROR and "gru_0_W" in outcome.detail, f"{outcome.kind}: {outcome.detail}"


def test_loads_external_data_that_matches_its_tensor(tmp_path):
    built = build_model(tmp_path, "GRU", head="matmul")
    X = np.random.default_rng(0).standard_normal((4, built.input_size)).astype(np.float32)
    expected = edgeseq_runtime.load(built.path).run(X)
    onnx.save(built.model, built.path, save_as_external_data=True, location="weights.bin", size_threshold=0)
    np.testing.assert_array_equal(edgeseq_runtime.load(built.path).run(X), expected)


@pytest.mark.parametrize("kind", ["fifo", "dev_zero_link", "directory"])
def test_refuses_a_model_path_that_is_not_a_regular_file_without_blocking(tmp_path, sandbox, kind):
    path = tmp_path / "model.onnx"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev_zero_link":
        path.symlink_to("/dev/zero")
    else:
        path.mkdir()
    outcome = sandbox.load_file(path)
    assert outcome.kind == MODEL_ERROR, f"{outcome.kind}: {outcome.detail}"
