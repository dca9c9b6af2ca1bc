"""Audio files to int16 windows of the spec's clip length.

Takes one audio file (WAV or anything libsndfile reads: 8/16/24/32 bit PCM,
float, any channel count, any rate) and produces int16 PCM windows of
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

`Stream` does all of it block by block (BLOCK_FRAMES frames of the file at a
time), so a one-hour file costs a few blocks of memory, not ten times its size.
Resampling a block gives exactly the samples resampling the whole file would:
each output sample of resample_poly is a fixed sum over the inputs within
`half_len / up` of it, so each chunk of outputs is computed from a slice of the
input that starts a whole number of `down` inputs before it (the filter phase
then matches) and reaches `half_len / up` inputs past it (overlap-save), and only
the outputs whose inputs all lie in the slice are kept. `decode` and `windows`
(whole-file results, from bytes) run on the same `Stream`.

A file that cannot become at least one window raises `AudioError` whose
`reason` says why in a few words; callers report it with the path, never crash.
"""

from __future__ import annotations

import io
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import soundfile as sf
from scipy.signal import firwin, resample_poly

SILENCE_FLOOR_DBFS = -60.0
FULL_SCALE = 32768.0
BLOCK_FRAMES = 1 << 16  # file frames decoded at a time: 1.5 s at 44.1 kHz, 1 MB of float64 stereo


class AudioError(Exception):
    """A file that yields no audio; `reason` is short and stable (used in summaries)."""

    def __init__(self, reason: str, detail: str = ""):
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


def _converted(channels: int, subtype: str) -> list[str]:
    """What differed from the device format (for the summary)."""
    out = []
    if channels != 1:
        out.append("mixed to mono")
    if subtype != "PCM_16":
        out.append(f"converted from {subtype}")
    return out


@dataclass(frozen=True)
class Decoded:
    """A file's audio as mono int16 at the target rate, and what was done to it."""

    samples: np.ndarray  # int16, 1-D
    file_rate: int
    channels: int
    subtype: str  # libsndfile subtype, e.g. PCM_16, PCM_U8, FLOAT

    @property
    def converted(self) -> list[str]:
        return _converted(self.channels, self.subtype)


def resample(x: np.ndarray, rate_from: int, rate_to: int) -> np.ndarray:
    """Polyphase resampling of float samples by the exact ratio rate_to/rate_from."""
    if rate_from == rate_to:
        return x
    g = math.gcd(rate_from, rate_to)
    return resample_poly(x, rate_to // g, rate_from // g)


def to_int16(x: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1) to int16 by rounding, clipping what lies outside."""
    return np.clip(np.rint(x * FULL_SCALE), -32768, 32767).astype(np.int16)


def _audio_error(exc: Exception) -> AudioError:
    text = str(exc)
    if "Format not recognised" in text or "unknown format" in text.lower():
        return AudioError("not an audio file", "libsndfile does not recognise the format")
    text = re.sub(r"^Error opening .*?: ", "", text.splitlines()[0] if text else type(exc).__name__)
    return AudioError("unreadable audio", text)


_SF_ERRORS = (sf.LibsndfileError, RuntimeError, TypeError, ValueError)


class Stream:
    """One file's audio as mono int16 at `sample_rate`, decoded `block_frames` at a time.

    `file` is a path or a seekable binary file object (read from its current position,
    left open). Opening reads the header: `file_rate`, `channels`, `subtype`, `converted`;
    `samples()` then yields int16 blocks and `windows(clip_samples)` the cut windows,
    both raising AudioError for what `decode` refuses. A path is opened here (OSError
    propagates) and closed by `close()` or the `with` block.
    """

    def __init__(self, file: str | os.PathLike | BinaryIO, sample_rate: int,
                 block_frames: int = BLOCK_FRAMES):
        self.sample_rate = sample_rate
        self.block_frames = block_frames
        self.length = 0  # int16 samples yielded so far
        self._owned = None
        if isinstance(file, (str, os.PathLike)):
            file = self._owned = open(file, "rb")
        try:
            here = file.tell()
            size = file.seek(0, io.SEEK_END) - here
            file.seek(here)
            if size <= 0:
                raise AudioError("empty file", "0 bytes")
            try:
                self._sf = sf.SoundFile(file)
            except _SF_ERRORS as exc:
                raise _audio_error(exc) from None
        except BaseException:
            self.close()
            raise
        self.file_rate, self.channels, self.subtype = (
            self._sf.samplerate, self._sf.channels, self._sf.subtype)

    @property
    def converted(self) -> list[str]:
        return _converted(self.channels, self.subtype)

    def close(self) -> None:
        if getattr(self, "_sf", None) is not None:
            self._sf.close()
        if self._owned is not None:
            self._owned.close()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _mono(self) -> Iterator[np.ndarray]:
        """float64 mono blocks of the file; AudioError when it has no or non-finite samples."""
        frames = 0
        while True:
            try:
                x = self._sf.read(self.block_frames, dtype="float64", always_2d=True)
            except _SF_ERRORS as exc:
                raise _audio_error(exc) from None
            if len(x) == 0:
                break
            if not np.all(np.isfinite(x)):
                raise AudioError("unreadable audio", "NaN or infinite samples")
            frames += len(x)
            yield x.mean(axis=1)
        if frames == 0:
            raise AudioError("no samples", f"{self.channels} channel(s) at {self.file_rate} Hz, "
                                           f"0 frames")

    def samples(self) -> Iterator[np.ndarray]:
        """The file's int16 samples at `sample_rate`, one block at a time."""
        blocks = (self._mono() if self.file_rate == self.sample_rate else
                  _resample_blocks(self._mono(), self.file_rate, self.sample_rate,
                                   self.block_frames))
        for x in blocks:
            out = to_int16(x)
            self.length += len(out)
            yield out

    def windows(self, clip_samples: int) -> Iterator[np.ndarray]:
        """int16 windows as `cut` makes them from the whole file; AudioError("too short")
        at the end when not even half a window was there."""
        pending = np.zeros(0, dtype=np.int16)
        count = 0
        for block in self.samples():
            pending = np.concatenate([pending, block]) if len(pending) else block
            whole = len(pending) // clip_samples * clip_samples
            for start in range(0, whole, clip_samples):
                count += 1
                yield pending[start:start + clip_samples].copy()
            pending = pending[whole:].copy()
        for w in cut(pending, clip_samples):
            count += 1
            yield w
        if not count:
            raise _too_short(self.length, self.sample_rate, clip_samples)


def _resample_blocks(blocks: Iterator[np.ndarray], rate_from: int, rate_to: int,
                     block_frames: int) -> Iterator[np.ndarray]:
    """resample(whole signal) as float blocks, computed chunk by chunk (overlap-save).

    resample_poly's output n is sum(h[k] x[j]) over the inputs j with
    |j * up - n * down| <= half_len, in a fixed order. A chunk of `step` inputs (a
    multiple of `down`) gives the outputs from c0 * up / down on; they are computed by
    resample_poly on x[a:b], with a = c0 less `back` (a multiple of `down`, so output i of
    the slice is output a * up / down + i of the whole, with the same filter phase) and
    b = c0 + step + `reach`, so every kept output sums the same products in the same order
    as the whole-file call. The only difference, zero taps past the slice, adds +-0.
    """
    g = math.gcd(rate_from, rate_to)
    up, down = rate_to // g, rate_from // g
    max_rate = max(up, down)
    half_len = 10 * max_rate  # resample_poly's own filter design, made once per file
    h = firwin(2 * half_len + 1, 1.0 / max_rate, window=("kaiser", 5.0))
    reach = -(-half_len // up) + 1
    back = -(-reach // down) * down
    step = max(1, block_frames // down) * down
    buf, start, c0, eof = np.zeros(0), 0, 0, False  # buf holds inputs start .. start + len(buf)
    while True:
        need = c0 + step + reach
        while not eof and start + len(buf) < need:
            block = next(blocks, None)
            if block is None:
                eof = True
            else:
                buf = np.concatenate([buf, block])
        have = start + len(buf)
        o0 = c0 // down * up
        o1 = o0 + step // down * up
        if eof:
            o1 = min(o1, -(-have * up // down))  # the whole signal's output length
            if o0 >= o1:
                return
        a = max(0, c0 - back)
        y = resample_poly(buf[a - start:min(have, need) - start], up, down, window=h)
        off = a // down * up
        yield y[o0 - off:o1 - off]
        c0 += step
        if c0 - back > start:
            buf, start = buf[c0 - back - start:], c0 - back


def _too_short(length: int, sample_rate: int, clip_samples: int) -> AudioError:
    return AudioError("too short", f"{length / sample_rate:.3f} s, less than half of a "
                                   f"{clip_samples / sample_rate:g} s window")


def decode(data: bytes, sample_rate: int) -> Decoded:
    """Decode file bytes to mono int16 at `sample_rate`; AudioError when unusable."""
    with Stream(io.BytesIO(data), sample_rate) as s:
        samples = np.concatenate(list(s.samples()))
    return Decoded(samples, s.file_rate, s.channels, s.subtype)


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
        raise _too_short(len(decoded.samples), sample_rate, clip_samples)
    return decoded, out
