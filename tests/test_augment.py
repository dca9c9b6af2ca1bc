"""Augmentation: reproducible for a seed, each effect does what the spec says; SYNTHETIC data."""

from __future__ import annotations

import numpy as np
import pytest

from generator import synthetic
from generator.augment import augment
from generator.errors import SpecError
from generator.spec import Augmentation, load_spec

RATE = 16000
OFF = dict(noise_probability=0, silence_probability=0, mix_probability=0, shift_probability=0,
           gain_probability=0)


def clips(n=8, seed=0, level=3000):
    rng = np.random.default_rng(seed)
    return np.rint(rng.standard_normal((n, RATE)) * level).astype(np.int16), np.arange(n) % 2


def only(**kw) -> Augmentation:
    return Augmentation(copies=1, seed=5, **{**OFF, **kw})


def test_same_seed_same_bytes_other_seed_differs():
    x, y = clips()
    aug = Augmentation(copies=3, seed=11)
    a, la = augment(x, y, aug, RATE)
    b, lb = augment(x, y, aug, RATE)
    c, _ = augment(x, y, aug.model_copy(update={"seed": 12}), RATE)
    assert a.dtype == np.int16 and a.shape == (32, RATE)
    assert a.tobytes() == b.tobytes() and np.array_equal(la, lb)
    assert not np.array_equal(a[8:], c[8:])
    assert np.array_equal(a[:8], x) and np.array_equal(la, np.tile(y, 4))


def test_zero_copies_returns_the_originals():
    x, y = clips()
    a, la = augment(x, y, Augmentation(copies=0), RATE)
    assert np.array_equal(a, x) and np.array_equal(la, y)


def test_gain_scales_and_clips_to_int16():
    x, y = clips(level=12000)
    a, _ = augment(x, y, only(gain_probability=1, gain_db={"min": 12, "max": 12}), RATE)
    copy = a[8:].astype(float)
    inside = np.abs(x.astype(float) * 10 ** (12 / 20)) < 32000
    assert np.allclose(copy[inside], x[inside] * 10 ** (12 / 20), atol=0.51)
    assert copy.max() == 32767 and copy.min() == -32768


def test_shift_is_circular_and_bounded():
    x, y = clips()
    a, _ = augment(x, y, only(shift_probability=1, shift_max_seconds=0.1), RATE)
    for orig, copy in zip(x, a[8:]):
        shifts = [s for s in range(-1600, 1601) if np.array_equal(np.roll(orig, s), copy)]
        assert len(shifts) == 1


def test_silence_zeroes_one_stretch_no_longer_than_allowed():
    x, y = clips()
    a, _ = augment(x, y, only(silence_probability=1, silence_max_fraction=0.25), RATE)
    for orig, copy in zip(x, a[8:]):
        changed = np.flatnonzero(orig != copy)
        assert not copy[changed].any()
        if len(changed):
            assert changed[-1] - changed[0] < 0.25 * RATE


def test_noise_has_the_requested_snr():
    x, y = clips()
    a, _ = augment(x, y, only(noise_probability=1, noise_snr_db={"min": 10, "max": 10}), RATE)
    noise = a[8:].astype(float) - x
    snr = 10 * np.log10(np.mean(x.astype(float) ** 2, axis=1) / np.mean(noise ** 2, axis=1))
    assert np.allclose(snr, 10, atol=0.3)


def test_mixing_takes_a_clip_of_the_same_label():
    x, y = clips()
    x[y == 1] = 0  # label 1 is digital silence: mixing in a label-0 clip would show
    a, la = augment(x, y, only(mix_probability=1, mix_gain_db={"min": -6, "max": -6}), RATE)
    assert not a[8:][la[8:] == 1].any()
    mixed = a[8:][la[8:] == 0].astype(float)
    assert all(not np.array_equal(m, o) for m, o in zip(mixed, x[y == 0]))


def test_rejects_float_input():
    with pytest.raises(ValueError):
        augment(np.zeros((2, 10)), np.zeros(2), Augmentation(copies=1), RATE)


# --------------------------------------------------------------- SYNTHETIC data

def _peak_hz(x: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(x.astype(float)))
    return float(np.argmax(spectrum[1:]) + 1) * RATE / len(x)


def test_synthetic_clips_are_deterministic_and_the_beeps_are_2_to_4_khz():
    a = [synthetic.clip(synthetic.EVENT, "beep", i, 3, RATE, RATE) for i in range(20)]
    b = [synthetic.clip(synthetic.EVENT, "beep", i, 3, RATE, RATE) for i in range(20)]
    assert all(np.array_equal(p, q) for p, q in zip(a, b)) and a[0].dtype == np.int16
    assert not np.array_equal(a[0], synthetic.clip(synthetic.EVENT, "beep", 0, 4, RATE, RATE))
    assert all(1400 <= _peak_hz(x) <= 4000 for x in a)  # the lower tone is 0.7-0.9 of 2-4 kHz
    backgrounds = [synthetic.clip(synthetic.BACKGROUND, "background", i, 3, RATE, RATE) for i in range(20)]
    assert len({x.tobytes() for x in backgrounds}) == 20
    assert all(np.sqrt(np.mean(x.astype(float) ** 2)) > 100 for x in a + backgrounds)


def test_synthetic_roles_follow_the_documented_rule(tmp_path):
    def project(classes):
        path = tmp_path / "s.yaml"
        path.write_text(f"name: t\nclasses: {classes}\ndataset: {{layout: synthetic}}\n"
                        "model: {architecture: compact_cnn}\ntargets: [{name: p, board: rpi_pico}]\n")
        return load_spec(path, "s.yaml")

    assert synthetic.roles(project("[_noise_, beep]")) == {"beep": "event", "_noise_": "background"}
    with pytest.raises(SpecError, match=r"^s.yaml:2:17: .* cannot synthesize 'siren'"):
        synthetic.roles(project("[beep, siren, background]"))
    with pytest.raises(SpecError, match=r"^s.yaml:2:10: layout: synthetic needs a background class"):
        synthetic.roles(project("[beep, siren]"))
