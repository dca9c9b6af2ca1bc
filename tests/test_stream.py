"""The rendered streaming front end (mf_stream.c), fed hop by hop, equals the offline features of
the same samples on every column; the map it hands to the model is the last num_frames of them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from generator import hostc
from generator import features as F
from generator.spec import ProjectSpec, load_spec

from conftest import REPO

pytestmark = pytest.mark.slow  # builds the C module (cached after the first run)


def _project(name: str, features: dict | None = None, hop_frames: int | None = None):
    project = load_spec(REPO / "projects" / f"{name}.yaml")
    data = project.spec.model_dump(mode="json")
    data["features"].update(features or {})
    if hop_frames is not None:
        data["detection"]["hop_frames"] = hop_frames
    return dataclasses.replace(project, spec=ProjectSpec.model_validate(data))


def _stream(seconds: float, rate: int = 16000, seed: int = 0) -> np.ndarray:
    """Bursts of tones and noise at changing levels, with silent gaps."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    level = np.repeat(10 ** rng.uniform(-4, 0, n // 1000 + 1), 1000)[:n]
    x = level * (20000 * np.sin(2 * np.pi * 3100 * t) * (np.sin(2 * np.pi * 2 * t) > 0)
                 + rng.normal(0, 5000, n))
    x[n // 3: n // 3 + 4000] = 0
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


@pytest.mark.parametrize("name, features, hop_frames", [
    ("fire_alarm", {}, 1),                          # frame_step == frame_length
    ("keywords", {}, 2),                            # overlapping frames, two per hop
    ("keywords", {"frame_step": 160, "frame_length": 400}, 3),  # step does not divide the frame
    ("fire_alarm", {"kind": "spectrogram"}, 4),
])
def test_stream_equals_offline_on_every_column(name, features, hop_frames):
    project = _project(name, features, hop_frames)
    host = hostc.host_front_end(project)
    fe = host.fe
    samples = _stream(5.3)
    report = hostc.verify_stream(project, samples, host)
    pushed = len(samples) // fe.hop_samples * fe.hop_samples
    assert report["columns"] == 1 + (pushed - fe.frame_length) // fe.frame_step
    assert report["mismatches"] == 0 and report["values"] == report["columns"] * fe.num_bins


def test_map_is_the_model_input_of_the_last_frames():
    project = _project("keywords", hop_frames=2)
    host = hostc.host_front_end(project)
    fe = host.fe
    samples = _stream(2.0, seed=3)
    columns, final = host.stream(samples)
    offline = F.compute(fe, samples[:len(samples) // fe.hop_samples * fe.hop_samples])
    assert np.array_equal(final, offline[-fe.num_frames:])
    # before num_frames columns exist, the map is the -128 filler followed by the columns so far
    _, early = host.stream(samples[:fe.hop_samples * 5])
    k = 1 + (fe.hop_samples * 5 - fe.frame_length) // fe.frame_step
    assert k < fe.num_frames
    assert np.all(early[:fe.num_frames - k] == -128)
    assert np.array_equal(early[fe.num_frames - k:], offline[:k])


@pytest.mark.shared
def test_stream_of_real_clips_equals_offline(shared_data):
    """Twelve fire_alarm recordings back to back (alarm and background), fed hop by hop."""
    import soundfile as sf
    project = _project("fire_alarm")
    host = hostc.host_front_end(project)
    files = (sorted((shared_data / "fire_alarm" / "alarm").glob("*.wav"))[:6]
             + sorted((shared_data / "fire_alarm" / "background").glob("*.wav"))[:6])
    samples = np.concatenate([sf.read(f, dtype="int16")[0] for f in files])
    report = hostc.verify_stream(project, samples, host)
    assert report["mismatches"] == 0 and report["columns"] == len(samples) // 512
    one = hostc.wav_features(project, files[0], host)
    assert np.array_equal(one, F.compute(host.fe, sf.read(files[0], dtype="int16")[0]))
