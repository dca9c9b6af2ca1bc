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


# ------------------------------------------------------- streaming (issue 12, item 10)

def whole_file_decode(data: bytes, sample_rate: int) -> np.ndarray:
    """The whole-file decoding audio.py did before it streamed (kept as the reference):
    read every frame as float64, average the channels, resample_poly once, round."""
    from math import gcd

    from scipy.signal import resample_poly

    x, rate = sf.read(io.BytesIO(data), dtype="float64", always_2d=True)
    mono = x.mean(axis=1)
    if rate != sample_rate:
        g = gcd(rate, sample_rate)
        mono = resample_poly(mono, sample_rate // g, rate // g)
    return np.clip(np.rint(mono * 32768), -32768, 32767).astype(np.int16)


@pytest.mark.parametrize("rate, channels, subtype", [
    (16000, 1, "PCM_16"),   # no resampling: the file's samples
    (16000, 2, "PCM_16"),
    (44100, 2, "PCM_16"),   # 160/441: a chunk boundary every 441 inputs at the smallest block
    (48000, 1, "PCM_24"),
    (22050, 1, "FLOAT"),
    (8000, 1, "PCM_16"),    # upsampling
    (11025, 6, "PCM_U8"),
])
@pytest.mark.parametrize("block_frames", [audio.BLOCK_FRAMES, 997, 441])
def test_streamed_decoding_equals_whole_file_decoding(rate, channels, subtype, block_frames):
    n = 3 * rate + 17  # ends mid-block and mid-window
    x = np.clip(0.3 * np.random.default_rng(rate + channels).standard_normal((n, channels)), -1, 1)
    x[rate // 3:rate // 3 + 50] = 0.999  # a clipped stretch across a block edge
    data = wav(x, rate=rate, subtype=subtype)
    expected = whole_file_decode(data, RATE)
    with audio.Stream(io.BytesIO(data), RATE, block_frames) as s:
        got = np.concatenate(list(s.samples()))
    assert got.dtype == np.int16 and np.array_equal(got, expected)
    with audio.Stream(io.BytesIO(data), RATE, block_frames) as s:
        wins = list(s.windows(RATE))
        assert s.converted == audio.decode(data, RATE).converted
    assert len(wins) == len(audio.cut(expected, RATE)) == 3
    assert all(np.array_equal(a, b) for a, b in zip(wins, audio.cut(expected, RATE)))
    assert np.array_equal(audio.decode(data, RATE).samples, expected)


def test_a_long_file_streams_in_a_few_blocks_of_memory(tmp_path):
    import tracemalloc

    minutes, rate = 3, 44100
    path = tmp_path / "long.wav"
    with sf.SoundFile(path, "w", rate, 2, "PCM_16", format="WAV") as f:
        rng = np.random.default_rng(0)
        for _ in range(minutes * 6):
            f.write(0.2 * rng.uniform(-1, 1, (10 * rate, 2)))
    tracemalloc.start()
    try:
        with audio.Stream(path, RATE) as s:
            count = sum(1 for _ in s.windows(RATE))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == minutes * 60
    # the whole-file path held the file's frames as float64 (2 x 8 bytes each): 254 MB here
    assert peak < 16 * 2**20, f"peak {peak / 2**20:.1f} MB"


def test_stream_reports_bad_files_as_decode_does(tmp_path):
    for data, reason in [(b"", "empty file"), (b"text, not audio\n" * 40, "not an audio file"),
                         (wav(tone(1.0))[:30], "unreadable audio"),
                         (wav(np.zeros(0)), "no samples"), (wav(tone(0.3)), "too short")]:
        path = tmp_path / "x.wav"
        path.write_bytes(data)
        with pytest.raises(audio.AudioError) as info:
            with audio.Stream(path, RATE) as s:
                list(s.windows(RATE))
        assert info.value.reason == reason and str(tmp_path) not in str(info.value)
