"""Augmentation: reproducible for a seed, each effect does what the spec says; SYNTHETIC data."""

from __future__ import annotations

import numpy as np
import pytest

from generator import synthetic
from generator.augment import augment, spec_augment
from generator.errors import SpecError
from generator.spec import Augmentation, SpecAugment, load_spec

RATE = 16000
EFFECTS = ("shift", "pitch", "speed", "mix", "background", "filter", "gain", "silence", "noise")
OFF = {name: {"probability": 0} for name in EFFECTS}


def clips(n=8, seed=0, level=3000):
    rng = np.random.default_rng(seed)
    return np.rint(rng.standard_normal((n, RATE)) * level).astype(np.int16), np.arange(n) % 2


def tone(hz: float, n: int = RATE, level: float = 8000) -> np.ndarray:
    return np.rint(level * np.sin(2 * np.pi * hz * np.arange(n) / RATE)).astype(np.int16)


def only(**effects) -> Augmentation:
    """One copy with every effect off except `effects` (name: its settings, probability 1)."""
    settings = {**OFF, **{k: {"probability": 1, **v} for k, v in effects.items()}}
    return Augmentation(copies=1, seed=5, **settings)


def test_same_seed_same_bytes_other_seed_differs():
    x, y = clips()
    aug = Augmentation(copies=3, seed=11)
    a, la = augment(x, y, aug, RATE, detect=[0], background_labels=[1])
    b, lb = augment(x, y, aug, RATE, detect=[0], background_labels=[1])
    c, _ = augment(x, y, aug.model_copy(update={"seed": 12}), RATE, detect=[0],
                   background_labels=[1])
    assert a.dtype == np.int16 and a.shape == (32, RATE)
    assert a.tobytes() == b.tobytes() and np.array_equal(la, lb)
    assert not np.array_equal(a[8:], c[8:])
    assert np.array_equal(a[:8], x) and np.array_equal(la, np.tile(y, 4))


def test_a_clips_copies_do_not_depend_on_its_position():
    x, y = clips()
    aug = Augmentation(copies=2, seed=3, mix={"probability": 0}, background={"probability": 0})
    a, _ = augment(x, y, aug, RATE)
    b, _ = augment(x[::-1].copy(), y[::-1].copy(), aug, RATE)
    assert np.array_equal(a[8:16], b[8:16][::-1])


def test_global_random_state_is_left_as_it_was():
    np.random.seed(1)
    expected = np.random.random()
    np.random.seed(1)
    augment(*clips(), Augmentation(copies=1, seed=2), RATE)
    assert np.random.random() == expected


def test_zero_copies_returns_the_originals():
    x, y = clips()
    a, la = augment(x, y, Augmentation(copies=0), RATE)
    assert np.array_equal(a, x) and np.array_equal(la, y)


def test_gain_scales_and_clips_to_int16():
    x, y = clips(level=12000)
    a, _ = augment(x, y, only(gain={"db": {"min": 12, "max": 12}}), RATE)
    copy = a[8:].astype(float)
    inside = np.abs(x.astype(float) * 10 ** (12 / 20)) < 32000
    assert np.allclose(copy[inside], x[inside] * 10 ** (12 / 20), atol=1.0)
    assert copy.max() == 32767 and copy.min() == -32768


def test_shift_is_circular_and_bounded():
    x, y = clips()
    a, _ = augment(x, y, only(shift={"max_seconds": 0.1}), RATE)
    for orig, copy in zip(x, a[8:]):
        shifts = [s for s in range(-1600, 1601) if np.array_equal(np.roll(orig, s), copy)]
        assert len(shifts) == 1


def test_silence_zeroes_one_stretch_no_longer_than_allowed():
    x, y = clips()
    a, _ = augment(x, y, only(silence={"max_fraction": 0.25}), RATE)
    for orig, copy in zip(x, a[8:]):
        changed = np.flatnonzero(orig != copy)
        assert not copy[changed].any()
        if len(changed):
            assert changed[-1] - changed[0] < 0.25 * RATE


def test_noise_has_the_requested_snr():
    x, y = clips()
    a, _ = augment(x, y, only(noise={"snr_db": {"min": 10, "max": 10}}), RATE)
    noise = a[8:].astype(float) - x
    snr = 10 * np.log10(np.mean(x.astype(float) ** 2, axis=1) / np.mean(noise ** 2, axis=1))
    assert np.allclose(snr, 10, atol=0.3)


def _peak_hz(x: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(x.astype(float) * np.hanning(len(x))))
    return float(np.argmax(spectrum[1:]) + 1) * RATE / len(x)


@pytest.mark.parametrize("semitones", [-7, -3, 4])
def test_pitch_shift_moves_a_tones_peak_by_the_factor(semitones):
    x = np.stack([tone(1000), tone(3000)])
    a, _ = augment(x, np.array([0, 1]), only(pitch={"semitones": {"min": semitones,
                                                                   "max": semitones}}), RATE)
    for orig, copy in zip(x, a[2:]):
        want = _peak_hz(orig) * 2 ** (semitones / 12)
        assert abs(_peak_hz(copy) - want) <= 2, (semitones, _peak_hz(copy), want)
        assert len(copy) == len(orig)


def test_speed_moves_pitch_with_tempo_and_keeps_the_length():
    x = np.stack([tone(1000), tone(2000)])
    a, _ = augment(x, np.array([0, 1]), only(speed={"factor": {"min": 1.1, "max": 1.1}}), RATE)
    for orig, copy in zip(x, a[2:]):
        assert abs(_peak_hz(copy) - 1.1 * _peak_hz(orig)) <= 2
        assert copy.shape == orig.shape


def test_background_is_laid_under_detect_clips_at_the_requested_snr():
    # Label 0 (detect) is a tone; label 1 (the background class) is noise.
    x = np.stack([tone(3000), tone(2500), clips(1, level=2000)[0][0], clips(1, 1, 2000)[0][0]])
    y = np.array([0, 0, 1, 1])
    a, la = augment(x, y, only(background={"snr_db": {"min": 6, "max": 6}}), RATE,
                    detect=[0], background_labels=[1])
    assert np.array_equal(la, np.tile(y, 2))
    for i in (0, 1):
        added = a[4 + i].astype(float) - x[i]
        snr = 10 * np.log10(np.mean(x[i].astype(float) ** 2) / np.mean(added ** 2))
        assert abs(snr - 6) < 0.1, snr
        # what was added is one of the background clips, scaled
        assert max(abs(np.corrcoef(added, x[j].astype(float))[0, 1]) for j in (2, 3)) > 0.999
    assert np.array_equal(a[6:], x[2:])  # background clips themselves get no background


def test_background_folder_is_used(tmp_path):
    sf = pytest.importorskip("soundfile")
    noise = clips(1, 9, 4000)[0][0]
    sf.write(tmp_path / "hum.wav", noise, RATE, subtype="PCM_16")
    x, y = np.stack([tone(3000)]), np.array([0])
    a, _ = augment(x, y, only(background={"snr_db": {"min": 0, "max": 0}}), RATE,
                   detect=[0], background_labels=[], folder=tmp_path)
    added = a[1].astype(float) - x[0]
    snr = 10 * np.log10(np.mean(x[0].astype(float) ** 2) / np.mean(added ** 2))
    assert abs(snr) < 0.2
    assert abs(np.corrcoef(added, noise.astype(float))[0, 1]) > 0.99


def test_filter_removes_energy_outside_its_band():
    x = np.stack([(tone(300, level=6000) + tone(6000, level=6000)).astype(np.int16)])
    a, _ = augment(x, np.array([0]), only(filter={}), RATE)
    before = np.abs(np.fft.rfft(x[0].astype(float)))
    after = np.abs(np.fft.rfft(a[1].astype(float)))
    ratio = after[[300, 6000]] / before[[300, 6000]]
    assert ratio.min() < 0.5  # one of the two tones is cut by whichever filter was drawn


def test_mixing_takes_a_clip_of_the_same_label():
    x, y = clips()
    x[y == 1] = 0  # label 1 is digital silence: mixing in a label-0 clip would show
    a, la = augment(x, y, only(mix={"gain_db": {"min": -6, "max": -6}}), RATE)
    assert not a[8:][la[8:] == 1].any()
    mixed = a[8:][la[8:] == 0].astype(float)
    assert all(not np.array_equal(m, o) for m, o in zip(mixed, x[y == 0]))


def test_rejects_float_input():
    with pytest.raises(ValueError):
        augment(np.zeros((2, 10)), np.zeros(2), Augmentation(copies=1), RATE)


def test_spec_augment_masks_to_the_floor_within_the_widths():
    x = np.zeros((50, 31, 32), dtype=np.int8)
    sa = SpecAugment(probability=1, time_masks=1, max_frames=4, freq_masks=1, max_bins=5)
    out = spec_augment(x, sa, np.random.default_rng(0))
    assert out.dtype == np.int8 and not (x != 0).any()  # the input is untouched
    for m in out == -128:
        rows, cols = np.flatnonzero(m.all(axis=1)), np.flatnonzero(m.all(axis=0))
        assert len(rows) <= 4 and len(cols) <= 5
        assert (m == (np.isin(np.arange(31), rows)[:, None] | np.isin(np.arange(32), cols))).all()
    assert (out == -128).any(axis=(1, 2)).mean() > 0.8
    none = spec_augment(x, sa.model_copy(update={"probability": 0}), np.random.default_rng(0))
    assert np.array_equal(none, x)


# --------------------------------------------------------------- SYNTHETIC data

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
