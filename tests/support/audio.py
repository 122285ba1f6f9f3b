"""Real speech for the voice-activity tests: English sentences spoken by ``espeak-ng``, resampled
to 16 kHz mono by ``sox``, with gaps of silence between them and pink noise under all of it.

Both are Debian packages (``apt-get install espeak-ng sox``, as ``.ci/run`` does). Every sox call
runs with ``-R``, so that its noise and its dither are the same on every build: the recording is
the same samples each time (without it, the parity tests' worst chunk moved from run to run). It
knows where its sentences are, so a test can tell speech chunks from gaps.
"""

import dataclasses
import pathlib
import shutil
import subprocess
import wave

import numpy as np

RATE = 16000
SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Streaming models keep their state from one chunk of audio to the next.",
    "Please turn off the lights in the kitchen before you leave.",
    "Seven hundred and twenty three people answered the survey yesterday.",
)
GAPS = (1.0, 1.2, 0.8, 1.5, 1.0)  # seconds of silence before each sentence, and after the last
NOISE = "pinknoise vol 0.02"  # sox synth: a noise floor about 34 dB under full scale


@dataclasses.dataclass(frozen=True)
class Speaker:
    """What a recording says and how: an espeak-ng voice (at ``speed`` words per minute, or its
    default), the sentences with the seconds of silence before each (and after the last), the sox
    noise under them and the voice's gain in the mix."""
    voice: str = "en-us"
    sentences: tuple[str, ...] = SENTENCES
    gaps: tuple[float, ...] = GAPS
    noise: str = NOISE
    gain: float = 0.9
    speed: int | None = None


# Other voices, words and noise than the default recording's: audio a model calibrated on it never heard.
OTHER_SPEAKERS = {
    "british_woman_white_noise": Speaker(
        "en-gb+f3", ("Nobody expected the weather to change so quickly this morning.",
                     "Could you send me the report by Friday afternoon?",
                     "Four thousand six hundred birds flew south over the lake."),
        (0.7, 1.3, 0.9, 1.1), "whitenoise vol 0.05", 0.5, 150),
    "scottish_man_fast_clipped_brown_noise": Speaker(
        "en-gb-scotland+m3", ("My grandmother grew tomatoes and beans in her garden.",
                              "The train to Edinburgh leaves at half past nine.",
                              "Turn left at the church and keep walking until the bridge."),
        (1.5, 0.6, 1.0, 0.8), "brownnoise vol 0.03", 1.3, 210),
    "american_woman_quiet": Speaker(
        "en-us+f2", ("Hello there, is anyone listening to me right now?",
                     "A small red boat drifted slowly towards the harbour.",
                     "We counted eleven stars before the clouds came back."),
        (2.0, 1.0, 0.5, 1.6), "pinknoise vol 0.005", 0.25, 170),
}


@dataclasses.dataclass(frozen=True)
class Recording:
    samples: np.ndarray  # float32 in [-1, 1), 16 kHz mono
    speech: tuple[tuple[int, int], ...]  # [start, end) sample spans of the spoken sentences

    def chunks(self, size: int) -> np.ndarray:
        """The recording cut into whole chunks of ``size`` samples, one per row."""
        usable = len(self.samples) // size * size
        return self.samples[:usable].reshape(-1, size)

    def windows(self, size: int, context: int) -> np.ndarray:
        """Each chunk after the ``context`` samples before it (zeros before the first), one per row:
        what a model that sees a little of the previous chunk gets per call."""
        chunks = self.chunks(size)
        before = np.concatenate([np.zeros((1, context), np.float32), chunks[:-1, -context:]])
        return np.concatenate([before, chunks], axis=1)


def tools_missing() -> list[str]:
    """The programs the recording needs that this machine lacks."""
    return [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]


def speech_recording(folder: pathlib.Path, speaker: Speaker = Speaker()) -> Recording:
    """Speak ``speaker``'s sentences into ``folder`` and mix them with its gaps of silence and its
    noise; read it back."""
    folder.mkdir(parents=True, exist_ok=True)
    spoken, speech, at = [], [], 0
    speed = ("-s", speaker.speed) if speaker.speed else ()
    for index, (sentence, gap) in enumerate(zip(speaker.sentences, speaker.gaps)):
        raw, padded = folder / f"sentence{index}_raw.wav", folder / f"sentence{index}.wav"
        _run("espeak-ng", "-v", speaker.voice, *speed, "-w", raw, sentence)
        _run("sox", "-R", raw, "-r", RATE, "-c", 1, "-b", 16, padded, "pad", gap, 0)
        length = len(read_wav(padded))
        start = at + round(gap * RATE)
        speech.append((start, at + length))
        at += length
        spoken.append(padded)
    voice, noise, mixed = folder / "speech.wav", folder / "noise.wav", folder / "speech_in_noise.wav"
    _run("sox", "-R", *spoken, voice, "pad", 0, speaker.gaps[-1])
    duration = len(read_wav(voice)) / RATE
    _run("sox", "-R", "-n", "-r", RATE, "-c", 1, "-b", 16, noise, "synth", duration, *speaker.noise.split())
    _run("sox", "-R", "-m", "-v", speaker.gain, voice, "-v", 1, noise, mixed)
    return Recording(read_wav(mixed), tuple(speech))


def read_wav(path: pathlib.Path) -> np.ndarray:
    """A 16-bit mono WAV as float32 samples in [-1, 1)."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
            raise ValueError(f"{path}: expected 16-bit mono, got {wav.getsampwidth() * 8}-bit, "
                             f"{wav.getnchannels()} channels")
        frames = wav.readframes(wav.getnframes())
    return (np.frombuffer(frames, dtype="<i2") / 32768.0).astype(np.float32)


def write_wav(path: pathlib.Path, samples: np.ndarray) -> None:
    """float32 samples in [-1, 1) as a 16-bit mono WAV at RATE (what read_wav reads back)."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes((samples * 32768).astype("<i2").tobytes())


def _run(*command):
    subprocess.run([str(part) for part in command], check=True, capture_output=True)
