"""Threads: each thread streams its own ``clone()`` of one model, at the same time as the others.

The kernels release the GIL (except in calls too short to be worth it: both ways are tried), so
clones really run in parallel; sharing the compiled code and the weights must not let one
stream's state leak into another's. Every thread gets other
inputs; a barrier every ``SYNC_EVERY`` steps keeps them in lockstep so that they overlap the
whole time; the outputs must equal, bit for bit, the same streams run one after another.
"""

import threading
from concurrent.futures import ThreadPoolExecutor

import edgeseq_runtime
import numpy as np
import pytest
from edgeseq_runtime.kernels.interpreter import execute
from support.onnx_builders import build_model

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


@pytest.mark.parametrize("gil", ["released", "kept"])
@pytest.mark.parametrize("options", MODELS.values(), ids=MODELS.keys())
def test_threads_streaming_their_own_clones_match_the_streams_run_one_after_another(tmp_path, options, gil,
                                                                                   monkeypatch):
    monkeypatch.setattr(edgeseq_runtime.model, "RELEASE_GIL_WEIGHTS", 0 if gil == "released" else 1 << 62)
    built = build_model(tmp_path, **options)
    model = edgeseq_runtime.load(built.path, batch=built.batch)
    assert (model._step_entry is execute) == (gil == "released")
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


def _key(state: dict) -> bytes:
    return b"".join(state[name].tobytes() for name in sorted(state))


@pytest.mark.parametrize("gil", ["released", "kept"])
def test_state_taken_from_a_checkpoint_thread_is_one_the_stream_had_or_refused(tmp_path, gil, monkeypatch):
    """One thread steps a model while another takes its state (get_state, save_state, clone)
    over and over: each state taken equals, bit for bit, the state after some number of steps
    in a replay on one thread (with that step count, for a saved file), or the taking raises
    RuntimeError. Never a state half stepped. A kernel that keeps the GIL lets the other thread
    in only between bytecodes, so a refusal there may not happen: it is asserted where the
    kernels release it."""
    monkeypatch.setattr(edgeseq_runtime.model, "RELEASE_GIL_WEIGHTS", 0 if gil == "released" else 1 << 62)
    built = build_model(tmp_path, "LSTM", input_size=8, hidden_size=96, num_layers=2, stacked_state=True,
                        head="matmul")
    model = edgeseq_runtime.load(built.path)
    xs = built.random_steps(np.random.default_rng(0), 4000)
    replay = model.clone()
    had = [_key(replay.get_state())]
    for x in xs:
        replay.step(x)
        had.append(_key(replay.get_state()))
    after_steps = {key: k for k, key in enumerate(had)}

    done, paused, looked = threading.Event(), threading.Event(), threading.Event()
    taken, saved, refused = [], [], 0

    def checkpoint():
        nonlocal refused
        quiet_rounds = 0
        while not done.is_set():
            quiet = paused.is_set()  # the stepper waits for this round to end: nothing steps meanwhile
            quiet_rounds += quiet
            try:
                taken.append(_key(model.get_state()))
                taken.append(_key(model.clone().get_state()))
                if quiet and quiet_rounds % 5 == 1:  # a save takes an fsync: one now and then
                    model.save_state(tmp_path / "s.state")
                    reader = replay.clone()
                    reader.load_state(tmp_path / "s.state")
                    saved.append((reader.steps, _key(reader.get_state())))
            except RuntimeError as e:
                assert not quiet and "another thread" in str(e)
                refused += 1
            if quiet:  # the pause is used up: the stepper goes on
                paused.clear()
                looked.set()

    def stepping():
        try:
            for start in range(0, len(xs), SYNC_EVERY):
                if start // SYNC_EVERY % 2:
                    model.run(xs[start:start + SYNC_EVERY])
                else:
                    for x in xs[start:start + SYNC_EVERY]:
                        model.step(x)
                # between two chunks, however fast they are, the checkpoint thread gets one round alone
                looked.clear()
                paused.set()
                looked.wait(5)
        finally:
            done.set()

    with ThreadPoolExecutor(2) as pool:
        for future in [pool.submit(checkpoint), pool.submit(stepping)]:
            future.result()
    assert _key(model.get_state()) == had[-1]
    assert sum(key not in after_steps for key in taken) == 0
    assert [steps for steps, key in saved if after_steps.get(key) != steps] == []
    assert taken and saved and (refused or gil == "kept")  # both outcomes happened
