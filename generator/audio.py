"""Audio files to int16 windows of the spec's clip length.

Takes the bytes of one audio file (WAV or anything libsndfile reads: 8/16/24/32
bit PCM, float, any channel count, any rate) and produces int16 PCM windows of
`clip_samples` at `sample_rate`, the device's sample format:

1. decode with soundfile to float64, averaging channels to mono;
2. resample with scipy.signal.resample_poly by the exact rational factor
   `sample_rate / file_rate` (both divided by their gcd);
3. convert to int16: round(x * 32768), clipped to [-32768, 32767] (exact for
   16-bit files: their samples come back unchanged);
4. cut into windows of `clip_samples` with a hop of one window. A tail (or a
   whole file) shorter than one window is zero-padded to a window if it holds at
   least half a window, else dropped; a file with no window is "too short";
5. mark silent windows: RMS below SILENCE_FLOOR_DBFS (-60 dBFS, i.e. an int16
   RMS under 32.8, about 0.1 % of full scale). The caller decides whether to drop
   them (dataset.py keeps them for a class meant to be silence, `_silence_`).

A file that cannot become at least one window raises `AudioError` whose
`reason` says why in a few words; callers report it with the path, never crash.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

SILENCE_FLOOR_DBFS = -60.0
FULL_SCALE = 32768.0


class AudioError(Exception):
    """A file that yields no audio; `reason` is short and stable (used in summaries)."""

    def __init__(self, reason: str, detail: str = ""):
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


@dataclass(frozen=True)
class Decoded:
    """A file's audio as mono int16 at the target rate, and what was done to it."""

    samples: np.ndarray  # int16, 1-D
    file_rate: int
    channels: int
    subtype: str  # libsndfile subtype, e.g. PCM_16, PCM_U8, FLOAT

    @property
    def converted(self) -> list[str]:
        """What differed from the device format (for the summary)."""
        out = []
        if self.channels != 1:
            out.append("mixed to mono")
        if self.subtype != "PCM_16":
            out.append(f"converted from {self.subtype}")
        return out


def resample(x: np.ndarray, rate_from: int, rate_to: int) -> np.ndarray:
    """Polyphase resampling of float samples by the exact ratio rate_to/rate_from."""
    if rate_from == rate_to:
        return x
    g = math.gcd(rate_from, rate_to)
    return resample_poly(x, rate_to // g, rate_from // g)


def to_int16(x: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1) to int16 by rounding, clipping what lies outside."""
    return np.clip(np.rint(x * FULL_SCALE), -32768, 32767).astype(np.int16)


def decode(data: bytes, sample_rate: int) -> Decoded:
    """Decode file bytes to mono int16 at `sample_rate`; AudioError when unusable."""
    if not data:
        raise AudioError("empty file", "0 bytes")
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            rate, channels, subtype = f.samplerate, f.channels, f.subtype
            x = f.read(dtype="float64", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        text = str(exc)
        if "Format not recognised" in text or "unknown format" in text.lower():
            raise AudioError("not an audio file", "libsndfile does not recognise the format") from None
        text = re.sub(r"^Error opening .*?: ", "", text.splitlines()[0] if text else type(exc).__name__)
        raise AudioError("unreadable audio", text) from None
    if x.shape[0] == 0:
        raise AudioError("no samples", f"{channels} channel(s) at {rate} Hz, 0 frames")
    if not np.all(np.isfinite(x)):
        raise AudioError("unreadable audio", "NaN or infinite samples")
    mono = x.mean(axis=1)
    return Decoded(to_int16(resample(mono, rate, sample_rate)), rate, channels, subtype)


def cut(samples: np.ndarray, clip_samples: int) -> list[np.ndarray]:
    """Windows of `clip_samples`, hop one window; a tail >= half a window is zero-padded."""
    out = []
    for start in range(0, len(samples), clip_samples):
        w = samples[start:start + clip_samples]
        if len(w) < clip_samples:
            if 2 * len(w) < clip_samples:
                break
            w = np.concatenate([w, np.zeros(clip_samples - len(w), dtype=samples.dtype)])
        out.append(w)
    return out


def rms_dbfs(window: np.ndarray) -> float:
    """RMS level in dB relative to int16 full scale (-inf for digital silence)."""
    power = float(np.mean(np.square(window.astype(np.float64))))
    return -math.inf if power == 0 else 10 * math.log10(power) - 20 * math.log10(FULL_SCALE)


def is_silent(window: np.ndarray) -> bool:
    return rms_dbfs(window) < SILENCE_FLOOR_DBFS


def windows(data: bytes, sample_rate: int, clip_samples: int) -> tuple[Decoded, list[np.ndarray]]:
    """Decode and cut; AudioError('too short') when not even half a window is there."""
    decoded = decode(data, sample_rate)
    out = cut(decoded.samples, clip_samples)
    if not out:
        seconds = len(decoded.samples) / sample_rate
        raise AudioError("too short", f"{seconds:.3f} s, less than half of a "
                                      f"{clip_samples / sample_rate:g} s window")
    return decoded, out
