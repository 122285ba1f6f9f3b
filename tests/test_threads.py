"""Threads: each thread streams its own ``clone()`` of one model, at the same time as the others.

The kernels release the GIL, so clones really run in parallel; sharing the compiled code and
the weights must not let one stream's state leak into another's. Every thread gets other
inputs; a barrier every ``SYNC_EVERY`` steps keeps them in lockstep so that they overlap the
whole time; the outputs must equal, bit for bit, the same streams run one after another.
"""

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import edgeseq_runtime
from onnx_builders import build_model

THREADS = 4
STEPS = 400
SYNC_EVERY = 50

MODELS = {
    "lstm_two_layers": dict(op="LSTM", input_size=5, hidden_size=32, num_layers=2, stacked_state=True, head="matmul"),
    "gru_batch2": dict(op="GRU", input_size=3, hidden_size=24, batch=2, linear_before_reset=1, head="matmul",
                       head_activation="Softmax"),
    "rnn_tokens": dict(op="RNN", vocab=20, hidden_size=16, head="gemm", head_activation="Tanh"),
}


def _stream(model, xs, barrier) -> np.ndarray:
    """Step ``model`` through ``xs``, alternating step(out=) and run(out=) chunks of SYNC_EVERY
    steps, and meeting the other threads at the barrier before each chunk."""
    step_shape = (model.output_size,) if model.batch == 1 else (model.batch, model.output_size)
    out = np.empty((len(xs), *step_shape), np.float32)
    for start in range(0, len(xs), SYNC_EVERY):
        barrier.wait()
        end = start + SYNC_EVERY
        if start // SYNC_EVERY % 2:
            model.run(xs[start:end], out=out[start:end])
        else:
            for t in range(start, end):
                model.step(xs[t], out=out[t])
    return out


@pytest.mark.parametrize("options", MODELS.values(), ids=MODELS.keys())
def test_threads_streaming_their_own_clones_match_the_streams_run_one_after_another(tmp_path, options):
    built = build_model(tmp_path, **options)
    model = edgeseq_runtime.load(built.path, batch=built.batch)
    inputs = [built.random_steps(np.random.default_rng(i), STEPS) for i in range(THREADS)]
    one_after_another = []
    for xs in inputs:
        stream = model.clone()
        one_after_another.append(np.stack([stream.step(x) for x in xs]))

    clones = [model.clone() for _ in range(THREADS)]
    barrier = threading.Barrier(THREADS, timeout=60)  # a failing thread breaks it instead of hanging the rest
    with ThreadPoolExecutor(THREADS) as pool:
        together = list(pool.map(_stream, clones, inputs, [barrier] * THREADS))

    for k in range(THREADS):
        np.testing.assert_array_equal(together[k], one_after_another[k], err_msg=f"thread {k}")
    assert not np.array_equal(together[0], together[1])  # the streams did differ
