"""Seeded, reproducible augmentation of int16 training clips.

Takes clips [N, samples] (int16), their labels, the spec's `Augmentation` and
the sample rate; returns the originals followed by `aug.copies` augmented
copies of each clip (copy c of clip i at row (c + 1) * N + i), int16, with the
labels repeated to match. All draws come from one numpy Generator seeded with
`aug.seed`, in a fixed order, so the same inputs give the same output bytes.

Each copy applies, each with its own probability and in this order:
1. time shift: circular, by up to `shift_max_seconds` either way;
2. mix: another clip of the same label (itself only if the label has one clip),
   scaled to `mix_gain_db` relative to this clip's RMS; the label is kept;
3. gain: `gain_db`;
4. silence: a random stretch of up to `silence_max_fraction` set to zero;
5. white noise at an SNR drawn from `noise_snr_db` relative to the clip's power
   (for a clip quieter than -60 dBFS, relative to -60 dBFS; so also for mixing);
then rounds and clips to int16 (gain and mixing may clip, as a real ADC would).
Call it on the training split only.
"""

from __future__ import annotations

import numpy as np

from .spec import Augmentation

_SILENT_POWER = (32768.0 * 10 ** (-60 / 20)) ** 2  # -60 dBFS, the audio.py silence floor


def _power(x: np.ndarray) -> float:
    return float(np.mean(x * x))


def _one(i: int, same_label: np.ndarray, clips: np.ndarray,
         aug: Augmentation, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    x = clips[i]
    n = len(x)
    # Draw every random number, used or not, so one effect's probability never
    # changes what the others draw.
    u = rng.random(5)
    shift = int(rng.integers(-int(aug.shift_max_seconds * sample_rate),
                             int(aug.shift_max_seconds * sample_rate) + 1))
    pick = int(rng.integers(len(same_label)))
    if same_label[pick] == i and len(same_label) > 1:  # another clip, when the label has one
        pick = (pick + 1) % len(same_label)
    partner = int(same_label[pick])
    mix_db = rng.uniform(aug.mix_gain_db.min, aug.mix_gain_db.max)
    gain_db = rng.uniform(aug.gain_db.min, aug.gain_db.max)
    silence_len = int(rng.uniform(0, aug.silence_max_fraction) * n)
    silence_at = int(rng.integers(0, n - silence_len + 1))
    snr_db = rng.uniform(aug.noise_snr_db.min, aug.noise_snr_db.max)
    noise = rng.standard_normal(n)

    y = x.astype(np.float64)
    if u[0] < aug.shift_probability and shift:
        y = np.roll(y, shift)
    if u[1] < aug.mix_probability:
        other = clips[partner].astype(np.float64)
        p_y, p_o = _power(y), _power(other)
        if p_o > 0:
            y = y + other * np.sqrt(max(p_y, _SILENT_POWER) / p_o) * 10 ** (mix_db / 20)
    if u[2] < aug.gain_probability:
        y = y * 10 ** (gain_db / 20)
    if u[3] < aug.silence_probability and silence_len:
        y[silence_at:silence_at + silence_len] = 0
    if u[4] < aug.noise_probability:
        y = y + noise * np.sqrt(max(_power(y), _SILENT_POWER) / 10 ** (snr_db / 10))
    return np.clip(np.rint(y), -32768, 32767).astype(np.int16)


def augment(clips: np.ndarray, labels: np.ndarray, aug: Augmentation,
            sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Originals plus `aug.copies` augmented copies of each clip (see module docstring)."""
    clips = np.asarray(clips)
    labels = np.asarray(labels)
    if clips.dtype != np.int16 or clips.ndim != 2 or len(clips) != len(labels):
        raise ValueError("augment takes int16 clips [N, samples] and N labels")
    if aug.copies == 0 or len(clips) == 0:
        return clips.copy(), labels.copy()
    rng = np.random.default_rng(aug.seed)
    by_label = {int(v): np.flatnonzero(labels == v) for v in np.unique(labels)}
    copies = [clips]
    for _ in range(aug.copies):
        copies.append(np.stack([_one(i, by_label[int(labels[i])], clips, aug, sample_rate, rng)
                                for i in range(len(clips))]))
    return np.concatenate(copies), np.tile(labels, aug.copies + 1)
