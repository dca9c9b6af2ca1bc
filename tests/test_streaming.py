"""Streaming evaluation: seeded streams, the detector replay equal to detection.c, the
event-scoring rules, and the stage on the demo project."""

from __future__ import annotations

import ctypes
import shutil
import subprocess

import numpy as np
import pytest

from generator import streaming as S
from generator.boards import load_board
from generator.firmware.common import q15
from generator.spec import Range, Streaming, load_spec
from generator.targets import render_target

from conftest import REPO

RATE = 16000


def _project(name="demo"):
    return load_spec(REPO / "projects" / f"{name}.yaml")


@pytest.fixture(scope="module")
def detection_c(tmp_path_factory):
    """detection.c of the demo project, rendered and built for the host: the replay's onsets
    must be the C detector's."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no host C compiler")
    tmp = tmp_path_factory.mktemp("det")
    project = _project()
    target = project.spec.targets[0]
    analysis = {"arena": {"measured_bytes": 4000}, "model_bytes": 4, "macs": 1000,
                "input": {"dtype": "int8"}, "resolver": ["AddSoftmax"]}
    render_target(project, target, load_board(target.board), analysis, b"\0" * 4, tmp)
    lib = tmp / "libdet.so"
    subprocess.run([cc, "-shared", "-fPIC", "-O2", "-I", str(tmp), str(tmp / "detection.c"),
                    "-o", str(lib)], check=True)
    return project, ctypes.CDLL(str(lib))


def test_detector_replay_equals_detection_c(detection_c):
    project, lib = detection_c
    det = project.spec.detection  # demo: 2 classes, the first detects
    buf = ctypes.create_string_buffer(8192)
    lib.mf_detector_reset(buf)
    rng = np.random.default_rng(3)
    p = np.clip(np.cumsum(rng.normal(0, 0.15, 3000)) % 2.0 - 0.5, 0, 1)  # wanders on and off
    scores = np.stack([[q15(a), q15(1 - a)] for a in p]).astype(np.int64)
    on_c, onsets_c = False, []
    for h, row in enumerate(scores):
        got = lib.mf_detector_update(buf, (ctypes.c_int16 * 2)(*row.tolist()))
        if got == 0 and not on_c:
            onsets_c.append(h)
        on_c = got == 0
    (onsets,) = S.detector_onsets(scores, [0], det.smoothing, q15(det.threshold),
                                  q15(det.threshold - det.hysteresis))
    assert len(onsets) > 10 and onsets == onsets_c


SETTINGS = Streaming(minutes=2, event_gap_seconds=Range(min=3, max=6), snr_db=Range(min=6, max=6),
                     seed=4)


def _clips():
    rng = np.random.default_rng(0)
    t = np.arange(RATE) / RATE
    beeps = [np.rint(8000 * np.sin(2 * np.pi * f * t)).astype(np.int16) for f in (2000, 2500, 3000)]
    noise = [np.rint(rng.normal(0, 1500, RATE)).astype(np.int16) for _ in range(5)]
    return np.stack(beeps + noise), np.array([0] * 3 + [1] * 5)


def test_streams_are_seeded_and_events_sit_where_they_say():
    project = _project()
    clips, labels = _clips()
    a = S.make_stream(project, clips, labels, SETTINGS)
    b = S.make_stream(project, clips, labels, SETTINGS)
    assert a.samples.tobytes() == b.samples.tobytes() and a.events == b.events
    assert a.seconds == pytest.approx(120) and len(a.events) >= 15
    for e, f in zip(a.events, a.events[1:]):
        assert f.start - e.end >= 3 - 1e-9
    for e in a.events:  # a beep's band holds most of the energy inside the event, little outside
        x = a.samples[int(e.start * RATE):int(e.end * RATE)].astype(float)
        spec = np.abs(np.fft.rfft(x)) ** 2
        assert spec[1900:3100].sum() / spec.sum() > 0.6
    other = S.make_stream(project, clips, labels, SETTINGS.model_copy(update={"seed": 5}))
    assert other.events != a.events


def test_event_scoring_rules():
    stream = S.Stream(np.zeros(3600 * RATE // 60, np.int16), RATE,
                      (S.Event(0, 10.0, 11.0), S.Event(0, 20.0, 21.0), S.Event(1, 30.0, 31.0)))
    times = np.arange(0, 60, 0.1)

    def hop(t):
        return int(round(t * 10))

    onsets = [[hop(10.3), hop(10.6), hop(21.9), hop(40.0), hop(40.4)],  # class 0
              [hop(30.5), hop(50.0)]]                                    # class 1
    r = S.score_events(stream, times, onsets, [0, 1], tolerance=1.0, debounce=1.0)
    # 10.3 hits event 1 (latency 0.3); 10.6 merges (debounce); 21.9 hits event 2 (end + 0.9);
    # 40.0 is false, 40.4 merges into it; 30.5 hits event 3; 50.0 is false.
    assert (r["events"], r["detected"], r["false_alarms"]) == (3, 3, 2)
    assert r["latency_median_s"] == pytest.approx(0.5) and r["hours"] == pytest.approx(1 / 60)
    assert r["false_alarms_per_hour"] == pytest.approx(120)
    late = S.score_events(stream, times, [[hop(22.5)], []], [0, 1], 1.0, 1.0)
    assert (late["detected"], late["false_alarms"]) == (0, 1)  # past end + tolerance
    wrong = S.score_events(stream, times, [[hop(30.2)], []], [0, 1], 1.0, 1.0)
    assert (wrong["detected"], wrong["false_alarms"]) == (0, 0)  # during another event: excused


def test_no_false_alarm_still_has_an_upper_bound():
    lo, hi = S._garwood(0, 1.0)
    assert lo == 0 and hi == pytest.approx(3.689, abs=1e-3)
    lo, hi = S._garwood(10, 2.0)
    assert lo < 5 < hi
