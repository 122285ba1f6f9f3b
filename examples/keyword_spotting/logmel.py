"""The log-mel front end of the keyword spotter: one frame of 40 log energies every 10 ms.

The recipe, fixed so that a device can compute the very same frames (in C, per 10 ms of audio):

- audio: 16 kHz mono, samples as floats in [-1, 1) (16-bit PCM / 32768);
- frames: 400 samples (25 ms) every 160 samples (10 ms), no padding: frame t holds samples
  [160 t, 160 t + 400), so N samples make 1 + (N - 400) // 160 frames;
- window: periodic Hann, w[n] = 0.5 - 0.5 cos(2 pi n / 400);
- spectrum: the power |X[k]|^2 of a 512-point real FFT of the windowed frame (zero-padded),
  bins k = 0..256 at k * 16000 / 512 Hz;
- mel bands: 40 triangles on the HTK mel scale, mel(f) = 2595 log10(1 + f / 700), their edges
  42 points evenly spaced in mel from 20 Hz to 8000 Hz; band m rises from edge m to 1 at edge
  m + 1 and falls to 0 at edge m + 2 (in Hz, at each bin's frequency); no area normalisation;
- log: ln(band energy + 1e-6).

Computed in float64, returned as float32.
"""

import numpy as np

SAMPLE_RATE = 16000
WINDOW = 400          # samples: 25 ms
HOP = 160             # samples: 10 ms
FFT_SIZE = 512
BANDS = 40
LOW_HZ, HIGH_HZ = 20.0, 8000.0
FLOOR = 1e-6          # added to each band's energy before the log: silence stays finite


def hz_to_mel(hz):
    return 2595.0 * np.log10(1.0 + np.asarray(hz, np.float64) / 700.0)


def mel_to_hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel, np.float64) / 2595.0) - 1.0)


def mel_filterbank() -> np.ndarray:
    """(BANDS, FFT_SIZE // 2 + 1) float64: the weight of each FFT bin in each band."""
    edges = mel_to_hz(np.linspace(hz_to_mel(LOW_HZ), hz_to_mel(HIGH_HZ), BANDS + 2))
    bins = np.arange(FFT_SIZE // 2 + 1) * SAMPLE_RATE / FFT_SIZE
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins - lower) / (centre - lower)
    falling = (upper - bins) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling))


def frame_count(samples: int) -> int:
    return 0 if samples < WINDOW else 1 + (samples - WINDOW) // HOP


def log_mel(samples: np.ndarray) -> np.ndarray:
    """(frames, BANDS) float32 log-mel frames of 16 kHz mono ``samples``, by the recipe above."""
    samples = np.asarray(samples, np.float64)
    starts = np.arange(frame_count(len(samples))) * HOP
    frames = samples[starts[:, None] + np.arange(WINDOW)]
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(WINDOW) / WINDOW)
    power = np.abs(np.fft.rfft(frames * window, n=FFT_SIZE, axis=1)) ** 2
    return np.log(power @ mel_filterbank().T + FLOOR).astype(np.float32)
