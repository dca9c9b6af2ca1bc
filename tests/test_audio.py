"""Reading audio: conversions to the device format, cutting, silence, and bad files."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from generator import audio

RATE = 16000


def wav(x, rate=RATE, subtype="PCM_16", fmt="WAV") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, rate, subtype=subtype, format=fmt)
    return buf.getvalue()


def tone(seconds, freq=1000.0, rate=RATE, amp=0.5):
    t = np.arange(int(round(seconds * rate))) / rate
    return amp * np.sin(2 * np.pi * freq * t)


@pytest.mark.shared
def test_real_clip_decodes_to_its_exact_samples(shared_data):
    path = sorted((shared_data / "kws" / "yes").glob("*.wav"))[0]
    expected, rate = sf.read(path, dtype="int16")
    decoded, wins = audio.windows(path.read_bytes(), RATE, RATE)
    assert rate == RATE and decoded.converted == []
    assert len(wins) == 1 and np.array_equal(wins[0], expected)


def test_stereo_is_mixed_to_mono():
    left = np.rint(tone(1.0, 500) * 32767).astype(np.int16)
    right = np.rint(tone(1.0, 1500, amp=0.25) * 32767).astype(np.int16)
    d = audio.decode(wav(np.stack([left, right], axis=1)), RATE)
    assert d.channels == 2 and "mixed to mono" in d.converted
    assert np.array_equal(d.samples, np.rint((left.astype(float) + right) / 2).astype(np.int16))


@pytest.mark.parametrize("subtype, tolerance", [("PCM_U8", 256), ("PCM_24", 1), ("FLOAT", 1)])
def test_8_24_bit_and_float_become_int16(subtype, tolerance):
    x = tone(1.0)
    d = audio.decode(wav(x, subtype=subtype), RATE)
    assert d.samples.dtype == np.int16 and f"converted from {subtype}" in d.converted
    assert np.abs(d.samples.astype(int) - np.rint(x * 32768)).max() <= tolerance


def test_float_beyond_full_scale_is_clipped():
    d = audio.decode(wav(np.array([2.0, -2.0, 0.5] * 6000), subtype="FLOAT"), RATE)
    assert d.samples.max() == 32767 and d.samples.min() == -32768


def test_44k1_is_resampled_keeping_pitch_and_level():
    d = audio.decode(wav(tone(1.0, 1000, rate=44100), rate=44100), RATE)
    assert d.file_rate == 44100 and len(d.samples) == RATE
    spectrum = np.abs(np.fft.rfft(d.samples[1000:-1000] * np.hanning(RATE - 2000)))
    assert abs(np.argmax(spectrum) * RATE / (RATE - 2000) - 1000) < 2
    rms = np.sqrt(np.mean(d.samples[1000:-1000].astype(float) ** 2)) / 32768
    assert abs(rms - 0.5 / np.sqrt(2)) < 0.005


def test_cutting_pads_a_half_window_and_drops_less():
    n = 1000
    assert [len(w) for w in audio.cut(np.ones(2700, np.int16), n)] == [n, n, n]
    wins = audio.cut(np.ones(2400, np.int16), n)
    assert len(wins) == 2
    padded = audio.cut(np.ones(600, np.int16), n)
    assert len(padded) == 1 and padded[0][:600].all() and not padded[0][600:].any()
    assert audio.cut(np.ones(499, np.int16), n) == []


def test_silence_rule_is_minus_60_dbfs():
    rng = np.random.default_rng(0)
    assert audio.is_silent(np.zeros(RATE, np.int16))
    quiet = rng.standard_normal(RATE) * 32768 * 10 ** (-70 / 20)
    loud = rng.standard_normal(RATE) * 32768 * 10 ** (-50 / 20)
    assert audio.is_silent(np.rint(quiet).astype(np.int16))
    assert not audio.is_silent(np.rint(loud).astype(np.int16))
    assert audio.rms_dbfs(np.rint(loud).astype(np.int16)) == pytest.approx(-50, abs=0.2)


@pytest.mark.parametrize("data, reason", [
    (b"", "empty file"),
    (b"just some text, renamed to .wav\n" * 40, "not an audio file"),
    (wav(tone(1.0))[:30], "unreadable audio"),  # header cut before the data chunk
    (wav(np.zeros(0)), "no samples"),
    (wav(tone(0.3)), "too short"),
])
def test_bad_files_raise_audio_error_with_a_reason(data, reason):
    with pytest.raises(audio.AudioError) as info:
        audio.windows(data, RATE, RATE)
    assert info.value.reason == reason
    assert "BytesIO" not in str(info.value)
