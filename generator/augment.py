"""Seeded, reproducible augmentation of int16 training clips, with audiomentations.

`augment(clips, labels, aug, sample_rate, detect, background_labels, folder)`
takes the training split's int16 clips [N, samples] and labels, the spec's
`Augmentation`, the label indices of the detect classes and of the classes that
serve as backgrounds, and the resolved `augmentation.background.folder` (or
None). It returns the originals followed by `aug.copies` augmented copies of
each clip (copy c of clip i at row (c + 1) * N + i), int16, labels repeated.

Each copy runs one audiomentations `Compose`, every effect with its own
probability, in this order (a microphone hears the mixture, then adds its
colouring and its own noise):
1. time shift, circular (`Shift`);
2. pitch shift, duration kept (`PitchShift`, signalsmith-stretch);
3. speed perturbation: resampled by a factor (soxr), cut or zero-padded back;
4. mix: another training clip of the same label at `mix.gain_db`;
5. background, for clips of detect classes only: a training clip of a
   background class, or a file of the background folder (`AddBackgroundNoise`),
   at `background.snr_db` (RMS of the clip over RMS of the background);
6. filter: one of `LowPassFilter`, `HighPassFilter`, `BandPassFilter`;
7. `Gain`; 8. a silenced stretch (`TimeMask`); 9. white to brown noise at an
   SNR (`AddColorNoise`);
then scales back to int16, rounding and clipping (gain may clip, as an ADC would).

Reproducible: audiomentations draws from numpy's and Python's global
generators, so both are seeded before each copy from sha256(seed, the clip's
bytes, the copy number), and restored afterwards. A clip's copies therefore do
not depend on its position or on the other clips (beyond the pools that mix and
background draw from), and the same inputs give the same bytes.
Call it on the training split only: validation and test stay as recorded.

`spec_augment(x, aug, rng)` masks int8 feature maps (SpecAugment time and
frequency masks, set to -128, the front end's floor); train.py applies it to
training batches only.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import numpy as np

from .spec import Augmentation, SpecAugment

FULL_SCALE = 32768.0
_SILENT_RMS = 10 ** (-60 / 20)  # -60 dBFS, the audio.py silence floor


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def _at_snr(x: np.ndarray, other: np.ndarray, snr_db: float) -> np.ndarray:
    """x plus `other` scaled so that rms(x) / rms(scaled other) is snr_db."""
    r = _rms(other)
    if r == 0:
        return x
    target = max(_rms(x), _SILENT_RMS) / 10 ** (snr_db / 20)
    return (x + other * (target / r)).astype(np.float32)


def _speed(x: np.ndarray, sample_rate: int, factor: float) -> np.ndarray:
    """Play x `factor` times faster (pitch moves with it), cut or padded to len(x), centred."""
    import soxr
    y = soxr.resample(x, sample_rate, sample_rate / factor).astype(np.float32)
    n = len(x)
    if len(y) >= n:
        start = (len(y) - n) // 2
        return y[start:start + n]
    out = np.zeros(n, dtype=np.float32)
    start = (n - len(y)) // 2
    out[start:start + len(y)] = y
    return out


class _Pools:
    """Float clips per label, for the same-label mix and the background effect."""

    def __init__(self, clips: np.ndarray, labels: np.ndarray, background_labels: list[int]):
        self.clips = clips
        self.by_label = {int(v): np.flatnonzero(labels == v) for v in np.unique(labels)}
        bg = [self.by_label.get(int(v), np.array([], dtype=np.int64)) for v in background_labels]
        self.background = np.concatenate(bg) if bg else np.array([], dtype=np.int64)

    def partner(self, i: int, label: int) -> np.ndarray | None:
        same = self.by_label[label]
        others = same[same != i]
        return self.clips[others[np.random.randint(len(others))]] if len(others) else None

    def background_clip(self) -> np.ndarray | None:
        if not len(self.background):
            return None
        return self.clips[self.background[np.random.randint(len(self.background))]]


def _pipeline(aug: Augmentation, sample_rate: int, pools: _Pools, folder: Path | None):
    """The audiomentations Compose of one spec; its lambdas read `state` for the clip at hand."""
    import audiomentations as A

    state: dict = {}

    def mix(samples, sample_rate):
        other = pools.partner(state["i"], state["label"])
        if other is None:
            return samples
        gain_db = np.random.uniform(aug.mix.gain_db.min, aug.mix.gain_db.max)
        return _at_snr(samples, other, -gain_db)

    folder_noise = None
    if folder is not None:
        folder_noise = A.AddBackgroundNoise(sounds_path=folder, min_snr_db=aug.background.snr_db.min,
                                            max_snr_db=aug.background.snr_db.max, p=1.0)

    def background(samples, sample_rate):
        if not state["detect"]:
            return samples
        use_folder = folder_noise is not None and (not len(pools.background)
                                                   or np.random.random() < 0.5)
        if use_folder:
            return folder_noise(samples, sample_rate)
        other = pools.background_clip()
        if other is None:
            return samples
        snr = np.random.uniform(aug.background.snr_db.min, aug.background.snr_db.max)
        return _at_snr(samples, other, snr)

    def speed(samples, sample_rate):
        return _speed(samples, sample_rate, np.random.uniform(aug.speed.factor.min,
                                                              aug.speed.factor.max))

    f = aug.filter
    nyquist = sample_rate / 2
    filters = A.OneOf([
        A.LowPassFilter(min_cutoff_freq=f.low_pass_hz.min,
                        max_cutoff_freq=min(f.low_pass_hz.max, nyquist * 0.95), p=1.0),
        A.HighPassFilter(min_cutoff_freq=f.high_pass_hz.min, max_cutoff_freq=f.high_pass_hz.max,
                         p=1.0),
        A.BandPassFilter(min_center_freq=f.band_pass_center_hz.min,
                         max_center_freq=f.band_pass_center_hz.max, min_bandwidth_fraction=1.0,
                         max_bandwidth_fraction=1.99, p=1.0),
    ], p=f.probability)
    compose = A.Compose([
        A.Shift(min_shift=-aug.shift.max_seconds, max_shift=aug.shift.max_seconds,
                shift_unit="seconds", rollover=True, fade_duration=0.0, p=aug.shift.probability),
        A.PitchShift(min_semitones=aug.pitch.semitones.min, max_semitones=aug.pitch.semitones.max,
                     method="signalsmith_stretch", p=aug.pitch.probability),
        A.Lambda(transform=speed, p=aug.speed.probability),
        A.Lambda(transform=mix, p=aug.mix.probability),
        A.Lambda(transform=background, p=aug.background.probability),
        filters,
        A.Gain(min_gain_db=aug.gain.db.min, max_gain_db=aug.gain.db.max, p=aug.gain.probability),
        A.TimeMask(min_band_part=0.0, max_band_part=aug.silence.max_fraction, fade_duration=0.0,
                   p=aug.silence.probability),
        A.AddColorNoise(min_snr_db=aug.noise.snr_db.min, max_snr_db=aug.noise.snr_db.max,
                        min_f_decay=aug.noise.colour_decay_db.min,
                        max_f_decay=aug.noise.colour_decay_db.max, p=aug.noise.probability),
    ])
    return compose, state


def copy_seed(seed: int, clip: np.ndarray, copy: int) -> int:
    """The 32-bit seed of one augmented copy: sha256 of the seed, the clip's bytes, the copy."""
    h = hashlib.sha256(f"{seed}\0{copy}\0".encode() + np.ascontiguousarray(clip).tobytes())
    return int.from_bytes(h.digest()[:4], "big")


def augment(clips: np.ndarray, labels: np.ndarray, aug: Augmentation, sample_rate: int,
            detect: list[int] | None = None, background_labels: list[int] | None = None,
            folder: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Originals plus `aug.copies` augmented copies of each clip (see module docstring)."""
    clips = np.asarray(clips)
    labels = np.asarray(labels)
    if clips.dtype != np.int16 or clips.ndim != 2 or len(clips) != len(labels):
        raise ValueError("augment takes int16 clips [N, samples] and N labels")
    if aug.copies == 0 or len(clips) == 0:
        return clips.copy(), labels.copy()
    detect_set = set(detect or [])
    floats = clips.astype(np.float32) / FULL_SCALE
    pools = _Pools(floats, labels, list(background_labels or []))
    compose, state = _pipeline(aug, sample_rate, pools, folder)
    saved = np.random.get_state(), random.getstate()
    out = [clips]
    try:
        for c in range(aug.copies):
            rows = np.empty_like(clips)
            for i in range(len(clips)):
                s = copy_seed(aug.seed, clips[i], c)
                np.random.seed(s)
                random.seed(s)
                state.update(i=i, label=int(labels[i]), detect=int(labels[i]) in detect_set)
                y = compose(samples=floats[i].copy(), sample_rate=sample_rate)
                rows[i] = np.clip(np.rint(y.astype(np.float64) * FULL_SCALE), -32768, 32767)
            out.append(rows)
    finally:
        np.random.set_state(saved[0])
        random.setstate(saved[1])
    return np.concatenate(out), np.tile(labels, aug.copies + 1)


def spec_augment(x: np.ndarray, sa: SpecAugment, rng: np.random.Generator,
                 floor: int = -128) -> np.ndarray:
    """A copy of int8 feature maps x [N, frames, bins] with SpecAugment masks (see docstring).

    Each example is masked with probability `sa.probability`: `time_masks` spans of
    up to `max_frames` frames and `freq_masks` spans of up to `max_bins` bins are set
    to `floor` (silence). Every draw is made for every example, so the masks of one
    example do not depend on another's.
    """
    out = np.array(x, copy=True)
    n, frames, bins = out.shape[:3]
    for k in range(n):
        apply = rng.random() < sa.probability
        widths_t = rng.integers(0, min(sa.max_frames, frames) + 1, size=sa.time_masks)
        starts_t = rng.random(sa.time_masks)
        widths_f = rng.integers(0, min(sa.max_bins, bins) + 1, size=sa.freq_masks)
        starts_f = rng.random(sa.freq_masks)
        if not apply:
            continue
        for w, u in zip(widths_t, starts_t):
            t0 = int(u * (frames - w + 1))
            out[k, t0:t0 + w] = floor
        for w, u in zip(widths_f, starts_f):
            f0 = int(u * (bins - w + 1))
            out[k, :, f0:f0 + w] = floor
    return out
