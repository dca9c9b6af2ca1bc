"""The Python reference front end: design() constants, the int8 mapping, batch == frame by frame,
and the features stage's content-keyed cache."""

from __future__ import annotations

import dataclasses
import io
import zipfile

import numpy as np
import pytest

from generator import features as F
from generator import featurestage
from generator.spec import ProjectSpec, load_spec

from conftest import REPO


def _project(name: str = "fire_alarm", **features):
    project = load_spec(REPO / "projects" / f"{name}.yaml")
    if not features:
        return project
    data = project.spec.model_dump(mode="json")
    data["features"].update(features)
    return dataclasses.replace(project, spec=ProjectSpec.model_validate(data))


def _tone(fe: F.FrontEnd, hz: float, amplitude: float, n: int | None = None) -> np.ndarray:
    t = np.arange(n or fe.clip_samples) / fe.sample_rate
    return np.round(amplitude * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def _noisy_clips(fe: F.FrontEnd, n: int, seed: int = 0) -> np.ndarray:
    """Clips from silence to full scale: tones, noise, clipping, digital silence."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        level = 10 ** rng.uniform(-4.5, 0)
        x = rng.normal(0, level * 8000, fe.clip_samples) + _tone(fe, rng.uniform(100, 7000), level * 30000)
        if i % 5 == 0:
            x[: fe.clip_samples // 3] = 0
        out.append(np.clip(np.round(x), -32768, 32767))
    out[0][:] = 0
    out[1][:] = np.where(np.arange(fe.clip_samples) % 2, 32767, -32768)
    return np.stack(out).astype(np.int16)


def test_log_mel_design_shapes_and_monotonic_edges():
    fe = F.design(_project().spec)
    assert (fe.kind, fe.fft_size, fe.num_frames, fe.num_bins) == ("log_mel", 512, 31, 32)
    assert fe.spectrum_bins == 257 and len(fe.window) == 512
    assert len(fe.mel_edges_hz) == 34 and np.all(np.diff(fe.mel_edges_hz) > 0)
    assert fe.mel_edges_hz[0] == 0 and fe.mel_edges_hz[-1] == 8000
    assert len(fe.mel_start) == len(fe.mel_length) == len(fe.mel_offset) == 32
    assert np.all(np.diff(fe.mel_start) >= 0), "band starts must rise with frequency"
    assert min(fe.mel_length) >= 1 and sum(fe.mel_length) == len(fe.mel_weights)
    assert np.all(np.array(fe.mel_start) + np.array(fe.mel_length) <= fe.spectrum_bins)
    assert list(fe.mel_offset) == list(np.cumsum([0] + list(fe.mel_length[:-1])))
    weights = np.array(fe.mel_weights)
    assert weights.min() >= 0 and weights.max() <= 32767
    for s, n, o in zip(fe.mel_start, fe.mel_length, fe.mel_offset):  # each band has a peak
        assert weights[o:o + n].max() > 16000


def test_spectrogram_design_and_window():
    fe = F.design(_project(kind="spectrogram", frame_length=400, frame_step=160, fft_size=512).spec)
    assert (fe.num_bins, fe.spectrum_bins, fe.num_frames) == (257, 257, 1 + (16000 - 400) // 160)
    assert fe.mel_start == () and fe.mel_weights == ()
    w = np.array(fe.window)
    assert w[0] == 0 and w.max() == 32767 and len(w) == 400
    assert np.array_equal(w[1:], w[1:][::-1]), "a periodic Hann window is symmetric about n/2"
    assert fe.log_lo < fe.log_hi and fe.gain == round(255 * 2 ** 16 / (fe.log_hi - fe.log_lo))


def test_design_follows_every_feature_field():
    base = F.design(_project().spec)
    assert F.design(_project(frame_step=256).spec).num_frames == 61
    assert F.design(_project(mel_bands=40).spec).num_bins == 40
    assert F.design(_project(window="hamming").spec).window != base.window
    assert F.design(_project(floor_db=-80.0).spec).log_lo > base.log_lo
    assert F.design(_project(fmax_hz=4000.0).spec).mel_edges_hz[-1] == 4000


def test_int8_mapping_spans_silence_to_full_scale():
    fe = F.design(_project().spec)
    silence = F.compute(fe, np.zeros(fe.clip_samples, np.int16))
    assert np.all(silence == -128)
    loud = F.compute(fe, _tone(fe, 1000, 32000))
    quiet = F.compute(fe, _tone(fe, 1000, 32))
    assert 100 <= loud.max() <= 127, "a full-scale tone sits near the top, unclipped"
    # 60 dB quieter is 60 / 105 * 255 = 146 steps lower, within rounding of the log table
    assert 140 <= int(loud.max()) - int(quiet.max()) <= 152
    assert F.INPUT_SCALE == 1 / 128 and F.INPUT_ZERO_POINT == 0


def test_integer_log2_matches_float_log2():
    fe = F.design(_project().spec)
    v = np.unique(np.round(np.logspace(0, 40, 2000, base=2)).astype(np.int64))
    level = F.log2_fixed(v, fe) / (1 << fe.log_frac_bits)
    assert np.max(np.abs(level - np.log2(v))) < 0.02
    assert F.log2_fixed(np.array([0]), fe)[0] == 0


@pytest.mark.parametrize("kind", ["log_mel", "spectrogram", "mfcc"])
def test_batch_path_equals_frame_by_frame_reference(kind):
    fe = F.design(_project(kind=kind, frame_step=384).spec)
    clips = _noisy_clips(fe, 12)
    batch = F.compute_batch(fe, clips)
    assert batch.shape == (12, fe.num_frames, fe.num_bins) and batch.dtype == np.int8
    for clip, fast in zip(clips, batch):
        assert np.array_equal(F.compute(fe, clip), fast)
    assert len(np.unique(batch)) > 100, "the int8 range is used, not a few values"


def test_mfcc_design_is_an_orthonormal_dct_of_the_mel_bands():
    fe = F.design(_project(kind="mfcc", mel_bands=40, mfcc_coefficients=13).spec)
    assert (fe.num_bins, fe.mel_bands, len(fe.mel_start)) == (13, 40, 40)
    d = np.array(fe.dct).reshape(13, 40) / 32768
    assert np.allclose(d @ d.T, np.eye(13), atol=2e-4)  # orthonormal rows, to q15 rounding
    assert np.all(np.array(fe.dct[:40]) == fe.dct[0])  # c0 is the (scaled) mean


def test_mfcc_int8_equals_the_float_cepstrum_of_the_same_levels():
    """The integer DCT and its int8 mapping equal the float DCT-II of the clamped log-mel
    levels, to within one int8 step (q15 coefficients, rounding)."""
    fe = F.design(_project(kind="mfcc", mel_bands=32, mfcc_coefficients=13).spec)
    clips = _noisy_clips(fe, 6, seed=3)
    rows = F.frames(fe, clips[2])
    levels = F.batch_levels(fe, np.ascontiguousarray(rows))
    x = (np.clip(levels, fe.log_lo, fe.log_hi) - fe.log_lo).astype(np.float64)
    k, b = np.arange(13)[:, None], np.arange(32)[None, :]
    d = np.sqrt(2 / 32) * np.cos(np.pi * k * (2 * b + 1) / 64)
    d[0] /= np.sqrt(2)
    c = x @ d.T  # in level units (2^-8 log2 of power)
    span = fe.log_hi - fe.log_lo
    reach = fe.cepstral_range_db / F.DB_PER_OCTAVE * 256
    expected = np.concatenate([c[:, :1] / (span * np.sqrt(32)) * 255,
                               (c[:, 1:] / reach + 1) * 127.5], axis=1)
    expected = np.clip(np.round(expected), 0, 255) - 128
    got = F.compute(fe, clips[2]).astype(np.int64)
    assert np.max(np.abs(got - expected)) <= 1


def test_mfcc_int8_mapping_ends():
    fe = F.design(_project(kind="mfcc", mel_bands=32, mfcc_coefficients=13).spec)
    span = fe.log_hi - fe.log_lo
    top = F.to_int8(np.full((1, 32), fe.log_hi), fe)[0]   # every band at the ceiling
    bottom = F.to_int8(np.zeros((1, 32), np.int64), fe)[0]  # digital silence
    assert top[0] == 127 and bottom[0] == -128
    assert np.all(np.abs(top[1:]) <= 1) and np.all(np.abs(bottom[1:]) <= 1)  # flat: no shape
    ramp = np.linspace(fe.log_lo - 5000, fe.log_hi + 5000, 32).astype(np.int64)[None, :]
    c1 = F.to_int8(ramp, fe)[0][1]
    assert c1 == -128  # a full-range tilt is beyond +-range: it clamps, not wraps
    assert span > 0


def test_feature_cache_is_keyed_by_audio_and_front_end(tmp_path):
    fe = F.design(_project().spec)
    clips = _noisy_clips(fe, 6)
    first, computed = featurestage.cached_features(fe, clips, tmp_path)
    assert computed == 6 and np.array_equal(first, F.compute_batch(fe, clips))
    again, computed = featurestage.cached_features(fe, clips, tmp_path)
    assert computed == 0 and np.array_equal(again, first)
    # another spec with the same features section: the same front end, no recomputation
    other = _project("fire_alarm").spec.model_copy(update={"description": "changed"})
    assert featurestage.cached_features(F.design(other), clips, tmp_path)[1] == 0
    hop = other.model_copy(update={"detection": other.detection.model_copy(update={"hop_frames": 3})})
    assert F.design(hop).hop_frames == 3
    assert featurestage.cached_features(F.design(hop), clips, tmp_path)[1] == 0
    changed = clips.copy()
    changed[2, 100] += 1
    assert featurestage.cached_features(fe, changed, tmp_path)[1] == 1
    assert featurestage.cached_features(F.design(_project(frame_step=256).spec), clips, tmp_path)[1] == 6


def test_npz_is_deterministic_and_loadable():
    arrays = {"x_train": np.arange(24, dtype=np.int8).reshape(2, 3, 4), "y_train": np.array([0, 1])}
    blob = featurestage.npz_bytes(arrays)
    assert blob == featurestage.npz_bytes(dict(reversed(list(arrays.items()))))
    with np.load(io.BytesIO(blob)) as z:
        assert np.array_equal(z["x_train"], arrays["x_train"]) and z["y_train"].dtype == np.int64
    assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in zipfile.ZipFile(io.BytesIO(blob)).infolist())


def test_build_features_writes_every_split(tmp_path, monkeypatch):
    from generator.dataset import build_index
    monkeypatch.setenv("MICFORGE_CACHE", str(tmp_path / "cache"))
    project = load_spec(REPO / "projects" / "demo.yaml")
    index = build_index(project)
    out = tmp_path / "features.npz"
    featurestage.build_features(project, index, out)
    stamp = out.stat().st_mtime_ns
    with np.load(out) as z:
        spec = project.spec
        n = {s: sum(c["split"] == s for c in index["clips"]) for s in featurestage.SPLITS}
        assert z["x_train"].shape == ((spec.augmentation.copies + 1) * n["train"], 31, 32)
        assert z["x_validation"].shape[0] == n["validation"] == len(z["y_validation"])
        assert z["x_test"].dtype == np.int8 and z["y_test"].dtype == np.int64
        assert set(np.unique(z["y_train"])) == {0, 1}
    featurestage.build_features(project, index, out)
    assert out.stat().st_mtime_ns == stamp, "an unchanged rebuild leaves the npz untouched"


@pytest.mark.parametrize("line, message", [
    ("  fmax_hz: 9000", "fmax_hz (9000) is above half the sample rate (8000 Hz)"),
    ("  fmin_hz: 8000", "fmin_hz (8000) must be below fmax_hz (8000)"),
    ("  floor_db: -5", "ceiling_db (5.0) must be at least 12 dB above floor_db (-5.0)"),
])
def test_mel_range_and_levels_are_checked_at_their_line(tmp_path, line, message):
    from generator.errors import SpecError
    text = (REPO / "projects" / "fire_alarm.yaml").read_text()
    text = text.replace("  mel_bands: 32\n", f"  mel_bands: 32\n{line}\n")
    spec = tmp_path / "fire_alarm.yaml"
    spec.write_text(text)
    with pytest.raises(SpecError) as err:
        load_spec(spec)
    lineno = text.splitlines().index(line) + 1
    (problem,) = [p for p in err.value.problems if message in p.message]
    # range errors point at the key; the floor/ceiling rule at the features section
    assert problem.line == lineno if "hz" in line else 0 < problem.line < lineno, str(problem)
