"""Fleets of recorded streams for the replay tests, and the check that each stream of a replay
is exactly its own run."""

import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

import edgeseq


def fleet(lengths, seed=0, keys=None, features=3):
    """Streams of the given lengths as one table of shuffled rows: key ``device``, order ``t``
    (counting from 100, so that it is not a row number), features f0.. ; and each stream's
    rows in step order, by key."""
    rng = np.random.default_rng(seed)
    keys = list(range(len(lengths))) if keys is None else keys
    streams = {k: rng.uniform(-1, 1, (n, features)).astype(np.float32) for k, n in zip(keys, lengths)}
    device = [k for k, n in zip(keys, lengths) for _ in range(n)]
    t = np.concatenate([np.arange(100, 100 + n) for n in lengths])
    x = np.concatenate(list(streams.values()))
    shuffle = rng.permutation(len(device))
    table = pa.table({"device": pa.array(device).take(pa.array(shuffle)), "t": t[shuffle],
                      **{f"f{i}": x[shuffle, i] for i in range(features)}})
    return table, streams


def outputs_by_key(table, outputs=("y0", "y1")):
    """{key: (steps, outputs) array} from replay's table, each stream's rows in ``t`` order."""
    if "t" in table.column_names:
        table = table.take(pc.sort_indices(table, sort_keys=[("t", "ascending")]))  # a stable sort
    values = np.column_stack([table.column(name).to_numpy(zero_copy_only=False) for name in outputs])
    rows = {}
    for key, row in zip(table.column("device").to_pylist(), values):
        rows.setdefault(key, []).append(row)
    return {key: np.array(stream) for key, stream in rows.items()}


def assert_each_stream_is_its_own_run(model_path, table, streams, outputs=("y0", "y1"), states=None):
    """Every stream of replay's table equals, bit for bit, a fresh model's run over its rows."""
    got = outputs_by_key(table, outputs)
    assert sorted(got, key=str) == sorted(streams, key=str)
    model = edgeseq.load(model_path)
    for key, x in streams.items():
        model.reset()
        if states:
            model.load_state(os.path.join(states, f"{key}.state"))
        np.testing.assert_array_equal(got[key], model.run(x).reshape(len(x), -1), err_msg=f"key {key}")
