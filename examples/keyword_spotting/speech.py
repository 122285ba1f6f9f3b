"""The keyword-spotting data: synthetic speech, made on the spot with espeak-ng and sox.

Every utterance is one word spoken by espeak-ng (a formant synthesiser, not a recording of a
person), resampled to 16 kHz by sox, put at a random place in a one-second window, scaled, and
mixed with white, pink or brown noise (sox's synth) at a random signal-to-noise ratio. The
classes are the KEYWORDS, ``unknown`` (other words) and ``silence`` (noise alone).

The test split is held out by speaker and speed: its voices (espeak-ng accents with voice
variants) and its speaking rates appear nowhere in training, and it takes its noise from
another stretch of each noise recording. A model that scores well on it has learnt the words,
not the voices; how well that carries to human speech this data cannot tell.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import itertools
import subprocess

import numpy as np
from logmel import SAMPLE_RATE

KEYWORDS = ("yes", "no", "up", "down", "stop", "go")
UNKNOWN_WORDS = ("left", "right", "on", "off", "seven", "bed", "bird", "cat", "house", "tree", "wow", "happy")
CLASSES = (*KEYWORDS, "unknown", "silence")
CLIP_SECONDS = 1.0
CLIP = int(CLIP_SECONDS * SAMPLE_RATE)
NOISE_COLOURS = ("whitenoise", "pinknoise", "brownnoise")
NOISE_SECONDS = 20  # per colour; training draws from the first half, testing from the second
SNR_DB = (5.0, 30.0)      # speech over noise, drawn uniformly
SPEECH_PEAK = (0.2, 0.9)  # the word's peak amplitude, drawn uniformly
SILENCE_RMS = (1e-4, 0.05)  # the noise level of a silence clip, drawn log-uniformly
PITCH = (25, 75)          # espeak-ng -p (0-99), drawn uniformly per word


@dataclasses.dataclass(frozen=True)
class Split:
    """Who speaks how fast in one split: each word by each voice at each speed."""

    voices: tuple[str, ...]    # espeak-ng -v names, accent+variant
    speeds: tuple[int, ...]    # espeak-ng -s, words per minute
    noisy_copies: int          # mixes of each spoken word with noise (different place, level, noise)
    unknown_per_voice: int     # unknown words each voice says at each speed (taken in turn)


@dataclasses.dataclass(frozen=True)
class Size:
    """A data set's size: the CI configuration is the same recipe, smaller."""

    train: Split
    test: Split


FULL = Size(
    train=Split(voices=("en-us+m1", "en-us+f2", "en-gb+m3", "en-gb+f1", "en-gb-scotland+m4",
                        "en-gb-scotland+f3", "en-029+m5", "en-029+f5", "en-gb-x-gbclan+m6", "en-us+klatt"),
                speeds=(115, 155, 195), noisy_copies=4, unknown_per_voice=2),
    test=Split(voices=("en-gb-x-rp+m2", "en-gb-x-rp+f4", "en-us-nyc+m7", "en-gb-x-gbcwmd+klatt2"),
               speeds=(135, 175), noisy_copies=2, unknown_per_voice=2),
)
CI = Size(
    train=Split(voices=("en-us+m1", "en-gb+f1", "en-gb-scotland+m4", "en-029+f5"),
                speeds=(130, 180), noisy_copies=3, unknown_per_voice=2),
    test=Split(voices=("en-gb-x-rp+m2", "en-us-nyc+f4"), speeds=(155,), noisy_copies=1, unknown_per_voice=1),
)


@dataclasses.dataclass(frozen=True)
class Utterances:
    """Clips of CLIP samples (float32 in [-1, 1)), their class indices into CLASSES, and what was said."""

    audio: np.ndarray   # (clips, CLIP)
    labels: np.ndarray  # (clips,) int64
    spoken: tuple[str, ...]  # "word by voice at speed", or "silence (colour)"


def make_split(split: Split, part: int, seed: int, workers: int = 2) -> Utterances:
    """The clips of ``split``; ``part`` 0 or 1 picks the half of each noise recording to use."""
    rng = np.random.default_rng(seed)
    unknown = itertools.cycle(UNKNOWN_WORDS)
    jobs = []
    for voice, speed in itertools.product(split.voices, split.speeds):
        for word in (*KEYWORDS, *(next(unknown) for _ in range(split.unknown_per_voice))):
            jobs.append((word, voice, speed, int(rng.integers(*PITCH, endpoint=True))))
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        spoken = list(pool.map(lambda job: speak(*job), jobs))
    noises = {colour: half for colour, half in zip(NOISE_COLOURS, noise_recordings(part))}
    audio, labels, said = [], [], []
    for (word, voice, speed, pitch), samples in zip(jobs, spoken):
        label = CLASSES.index(word) if word in KEYWORDS else CLASSES.index("unknown")
        for _ in range(split.noisy_copies):
            colour = NOISE_COLOURS[rng.integers(len(NOISE_COLOURS))]
            audio.append(_mix(samples, noises[colour], rng))
            labels.append(label)
            said.append(f"{word} by {voice} at {speed} wpm, pitch {pitch}, {colour}")
    silences = len(jobs) * split.noisy_copies // (len(KEYWORDS) + split.unknown_per_voice)
    for _ in range(silences):  # as many as each keyword has
        colour = NOISE_COLOURS[rng.integers(len(NOISE_COLOURS))]
        audio.append(_noise(noises[colour], rng, np.exp(rng.uniform(*np.log(SILENCE_RMS)))))
        labels.append(CLASSES.index("silence"))
        said.append(f"silence ({colour})")
    return Utterances(np.stack(audio).astype(np.float32), np.array(labels, np.int64), tuple(said))


def speak(word: str, voice: str, speed: int, pitch: int) -> np.ndarray:
    """``word`` spoken by espeak-ng, as 16 kHz float samples (sox resamples espeak-ng's 22050 Hz)."""
    espeak = subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", word],
                            capture_output=True, check=True)
    sox = subprocess.run(["sox", "-R", "-t", "wav", "-", "-t", "raw", "-r", str(SAMPLE_RATE), "-e", "signed",
                          "-b", "16", "-c", "1", "-"], input=espeak.stdout, capture_output=True, check=True)
    return _trimmed(np.frombuffer(sox.stdout, "<i2") / 32768.0)


def noise_recordings(part: int) -> list[np.ndarray]:
    """Half ``part`` of NOISE_SECONDS of each NOISE_COLOURS from sox (the same samples on every run: -R)."""
    halves = []
    for colour in NOISE_COLOURS:
        sox = subprocess.run(["sox", "-R", "-n", "-t", "raw", "-r", str(SAMPLE_RATE), "-e", "signed", "-b", "16",
                              "-c", "1", "-", "synth", str(NOISE_SECONDS), colour], capture_output=True, check=True)
        samples = np.frombuffer(sox.stdout, "<i2") / 32768.0
        half = len(samples) // 2
        halves.append(samples[part * half:(part + 1) * half])
    return halves


def _trimmed(samples: np.ndarray) -> np.ndarray:
    """The word without espeak-ng's leading and trailing silence, at most one clip long."""
    loud = np.flatnonzero(np.abs(samples) > 0.01)
    if not len(loud):
        raise ValueError("espeak-ng spoke nothing audible")
    return samples[loud[0]:loud[-1] + 1][:CLIP]


def _noise(recording: np.ndarray, rng: np.random.Generator, rms: float) -> np.ndarray:
    start = rng.integers(len(recording) - CLIP)
    stretch = recording[start:start + CLIP]
    return stretch * (rms / np.sqrt(np.mean(stretch ** 2)))


def _mix(word: np.ndarray, recording: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The word at a random place and peak in a clip, over noise at a random SNR."""
    clip = np.zeros(CLIP)
    start = rng.integers(CLIP - len(word) + 1)
    word = word * (rng.uniform(*SPEECH_PEAK) / np.max(np.abs(word)))
    clip[start:start + len(word)] = word
    clip += _noise(recording, rng, np.sqrt(np.mean(word ** 2)) / 10 ** (rng.uniform(*SNR_DB) / 20))
    return np.clip(clip, -1.0, 32767 / 32768)
