"""SYNTHETIC demo audio: generated beeps and backgrounds, no recordings needed.

Takes (class name, clip index, seed, sample rate, clip length) and produces one
int16 clip, the same on every machine: every random draw comes from a numpy
Generator seeded by a sha256 of (seed, class, index). Used by `layout:
synthetic` (projects/demo.yaml) so the whole pipeline runs on a fresh machine.
These clips are SYNTHETIC: a model trained on them says nothing about real audio.

Roles of the spec's classes (`roles`):
- the *event* is the first class whose name neither starts with '_' nor is
  'background': alarm-like two-tone beeps (each tone 2-4 kHz, capped below 0.45
  of the sample rate), random beep period, duty cycle and level, over a quiet
  noise floor;
- the *background* is the one class named 'background' or starting with '_':
  noise of several colours, mains hum with harmonics, frequency chirps and random
  clicks, alone or mixed, at random levels.
Any other spec (no event, no background, or more than one of either) cannot be
synthesized and is a SpecError at the spec's `classes`.
"""

from __future__ import annotations

import hashlib

import numpy as np

from .errors import SpecError
from .spec import Project

EVENT, BACKGROUND = "event", "background"


def is_background(name: str) -> bool:
    return name == "background" or name.startswith("_")


def roles(project: Project) -> dict[str, str]:
    """Class name -> EVENT or BACKGROUND, or a SpecError saying why not."""
    classes = project.spec.classes
    events = [c for c in classes if not is_background(c)]
    backs = [c for c in classes if is_background(c)]
    if len(events) == 1 and len(backs) == 1:
        return {events[0]: EVENT, backs[0]: BACKGROUND}
    if not events or not backs:
        missing = "an event class (a name not starting with '_' and not 'background')" if not events \
            else "a background class (named 'background' or starting with '_')"
        msg = f"layout: synthetic needs {missing}; classes are {classes}"
        raise SpecError(project.positions.problem(("classes",), msg))
    extra = events[1:] if len(events) > 1 else backs[1:]
    i = classes.index(extra[0])
    msg = (f"layout: synthetic makes exactly two classes, one event (beeps: '{events[0]}') and one "
           f"background ('{backs[0]}'); it cannot synthesize '{extra[0]}': remove it or use recordings")
    raise SpecError(project.positions.problem(("classes", i), msg))


def _rng(seed: int, name: str, index: int) -> np.random.Generator:
    digest = hashlib.sha256(f"micforge-synthetic\0{seed}\0{name}\0{index}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "big"))


def _db(level_db: float) -> float:
    return 10.0 ** (level_db / 20.0)


def _normalize(x: np.ndarray, level_db: float) -> np.ndarray:
    """Scale to an RMS of `level_db` dBFS."""
    rms = float(np.sqrt(np.mean(x * x)))
    return x * (_db(level_db) / rms) if rms > 0 else x


def _coloured_noise(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Noise with power spectrum ~ 1/f^exponent (0 white, 1 pink, 2 brown)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spectrum), dtype=np.float64)
    f[0] = 1.0
    return np.fft.irfft(spectrum / f ** (exponent / 2), n)


def _beeps(rng: np.random.Generator, rate: int, n: int) -> np.ndarray:
    t = np.arange(n) / rate
    top = min(4000.0, 0.45 * rate)
    f1 = rng.uniform(min(2000.0, 0.6 * top), top)
    f2 = f1 * rng.uniform(0.7, 0.9)
    period = rng.uniform(0.12, 0.5)
    duty = rng.uniform(0.35, 0.65)
    phase = rng.uniform(0, 2 * period)
    u = (t + phase) / period
    beat = np.floor(u)
    on = (u - beat) < duty
    freq = np.where(beat % 2 == 0, f1, f2)
    tone = np.sin(2 * np.pi * np.cumsum(freq) / rate)
    tone += rng.uniform(0, 0.4) * np.sign(tone)  # a piezo's square-ish edge
    ramp = max(1, int(0.003 * rate))  # 3 ms fades, no clicks at the edges
    envelope = np.convolve(on.astype(np.float64), np.ones(ramp) / ramp, mode="same")
    x = _normalize(tone * envelope, rng.uniform(-30, -8))
    floor = _normalize(_coloured_noise(rng, n, rng.choice([0.0, 1.0, 2.0])), rng.uniform(-65, -40))
    return x + floor


def _background(rng: np.random.Generator, rate: int, n: int) -> np.ndarray:
    t = np.arange(n) / rate
    parts = []
    for kind in rng.choice(["noise", "hum", "chirp", "clicks"], size=rng.integers(1, 3), replace=False):
        if kind == "noise":
            x = _coloured_noise(rng, n, rng.choice([0.0, 1.0, 2.0]))
        elif kind == "hum":
            f0 = rng.choice([50.0, 60.0])
            x = sum(rng.uniform(0.1, 1) / k * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 6.3))
                    for k in range(1, 6))
        elif kind == "chirp":
            lo, hi = sorted(rng.uniform(100, 0.45 * rate, size=2))
            sweep = lo + (hi - lo) * (t / t[-1])
            x = np.sin(2 * np.pi * np.cumsum(sweep if rng.random() < 0.5 else sweep[::-1]) / rate)
        else:
            x = np.zeros(n)
            at = rng.integers(0, n, size=rng.integers(3, 30))
            x[at] = rng.uniform(-1, 1, size=len(at))
            x = np.convolve(x, np.exp(-np.arange(int(0.002 * rate) + 1) / (0.0004 * rate)), "same")
        parts.append(_normalize(x, rng.uniform(-45, -12)))
    return np.sum(parts, axis=0)


def clip(role: str, name: str, index: int, seed: int, sample_rate: int, clip_samples: int) -> np.ndarray:
    """SYNTHETIC clip number `index` of class `name` (role EVENT or BACKGROUND), int16."""
    rng = _rng(seed, name, index)
    make = _beeps if role == EVENT else _background
    x = make(rng, sample_rate, clip_samples)
    return np.clip(np.rint(x * 32768.0), -32768, 32767).astype(np.int16)


def clips(project: Project, name: str) -> list[np.ndarray]:
    """All SYNTHETIC clips of one class of a `layout: synthetic` spec."""
    spec = project.spec
    role = roles(project)[name]
    return [clip(role, name, i, spec.dataset.seed, spec.audio.sample_rate, spec.audio.clip_samples)
            for i in range(spec.dataset.synthetic.clips_per_class)]
