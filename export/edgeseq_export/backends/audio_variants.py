"""The calibration audio as a model may also hear it: louder, quieter, clipped, over noise, spoken
faster or slower.

A quantized Silero VAD moves its speech probability by up to 3x more on a recording it was not
calibrated on than on its calibration (0.017-0.033 against 0.0056-0.0074: the fp16 fallbacks and
the GPTQ roundings chosen by their error on one recording fit that recording). Measured on these
variants too, the choices hold on other voices, words and noise. Each variant is the whole
calibration stream, transformed; all are deterministic (a fixed seed), so that a quantization is
the same every run.
"""

import numpy as np

SEED = 0
QUIETER = 0.25  # -12 dB: a speaker further from the microphone
LOUDER = 2.5  # +8 dB, clipped to full scale: a speaker close to it, an overdriven input
WHITE_NOISE = 0.01  # RMS, -40 dBFS: a hissing input stage
BROWN_NOISE = 0.03  # RMS: rumble (traffic, wind), loud where speech is loud, at low frequencies
BROWN_CUTOFF = 1601  # samples of the moving average taken off the integrated noise (10 Hz at 16 kHz): no drift
SPEEDS = (0.85, 1.15)  # resampled: pitch and formants 15% lower and higher, another voice

NAMES = ("-12 dB", "+8 dB clipped", "white noise", "brown noise", *(f"speed x{s:g}" for s in SPEEDS))


def variants(steps: np.ndarray) -> list[np.ndarray]:
    """Each variant of ``steps`` (rows of consecutive samples, e.g. what ``wav_steps`` cuts a
    recording into), in the order of ``NAMES``, cut into rows of the same width."""
    rng = np.random.default_rng(SEED)
    samples = steps.astype(np.float64).ravel()
    width = steps.shape[1]
    brown = np.cumsum(rng.standard_normal(len(samples)))
    window = min(BROWN_CUTOFF, len(samples))  # "same" on a shorter stream would return the window's length
    brown -= np.convolve(brown, np.ones(window) / window, "same")
    brown *= BROWN_NOISE / max(float(brown.std()), np.finfo(float).tiny)
    streams = [samples * QUIETER, np.clip(samples * LOUDER, -1, 1),
               samples + rng.normal(0, WHITE_NOISE, len(samples)), samples + brown]
    streams += [_resampled(samples, speed) for speed in SPEEDS]
    return [stream[:len(stream) // width * width].reshape(-1, width).astype(steps.dtype) for stream in streams]


def _resampled(samples: np.ndarray, speed: float) -> np.ndarray:
    """``samples`` played ``speed`` times as fast (linear interpolation)."""
    return np.interp(np.arange(0, len(samples) - 1, speed), np.arange(len(samples)), samples)
