"""The fixed-point feature front end: the Python reference the device must equal.

`design(spec)` turns the spec's `features` (and audio) section into a frozen
`FrontEnd` holding every constant the C module uses: the q15 window, the FFT
size, the q15 mel filters (per band: first bin, length, weights), the integer
log2 table and the int8 scaling. The C templates are rendered from these values
only, so training and device cannot drift apart.

Per frame (both kinds), exactly as templates/common/mf_features.c.j2 does on the device:
  0. normalise: block floating point: the frame is shifted left by its headroom s
                (arm_absmax_no_idx_q15, then arm_shift_q15; s = MAX_SHIFT for silence),
                so quiet frames keep their precision through the q15 FFT, whose output
                is scaled by 1/fft_size; the log level gets 2 * (MAX_SHIFT - s) back below
                (a power: twice the amplitude's octaves).
  1. window:    arm_mult_q15(frame, window)            (q15 * q15 >> 15, saturated)
  2. spectrum:  arm_rfft_q15 (output scaled by 1/fft_size), then the exact power of the
                fft_size/2+1 bins: re*re + im*im as uint32 (no square root, no rounding;
                at most 2^31)
  3. energy:    spectrogram: the power itself;
                log_mel:     sum of power[start+k] * weight[k] per band (q15 weights), exact
                             in 64 bits: the C code splits each power into 16-bit halves so
                             an M0+ needs only 32-bit multiplies
  4. log:       an integer log2 with LOG_FRAC_BITS fractional bits: the position of the
                leading one plus a table lookup on the next LOG_TABLE_BITS bits, plus
                (2 * (MAX_SHIFT - s)) << LOG_FRAC_BITS; an energy of 0 gives level 0.
                Half that log2 would be the log of a magnitude: the factor is folded
                into log_lo, log_hi and gain (3.01 dB per log2 unit, not 6.02)
  5. int8:      the log level clamped to [log_lo, log_hi], then mapped linearly onto
                [-128, 127]: q = ((L - log_lo) * gain) >> GAIN_SHIFT, minus 128.
  mfcc, after 4: the band levels clamped to [log_lo, log_hi], minus log_lo (x_b >= 0), through
                an orthonormal DCT-II with q15 coefficients, exact in 64 bits:
                c_k = sum_b dct[k][b] * x_b. Then int8: c0 (0 .. its largest value) onto
                -128..127; c1.. from -cepstral_range_db to +cepstral_range_db onto -128..127,
                clamped: q = ((c_k * cep_gain[k] + cep_bias[k]) >> CEP_SHIFT) - 128, a
                negative sum giving -128 (no right shift of a negative number). Why an integer
                DCT on these levels rather than CMSIS-DSP's arm_mfcc_q15: it keeps the block
                floating point that holds quiet frames' precision (arm_mfcc_q15's q15 magnitudes
                lose a quiet frame's low bits before its log), and it costs
                mfcc_coefficients x mel_bands 32-bit multiplies per frame on top of log_mel
                (13 x 32: about 1% of the 512-point FFT's cycles on the M0+), where arm_mfcc_q15
                adds a complex FFT, square roots and its own log.

The int8 mapping is stated in dB relative to full scale (`features.floor_db`,
`features.ceiling_db`): 0 dB is the level of a full-scale sine at a bin centre
(the peak bin for a spectrogram, a unit-weight band for log_mel). The defaults
(-100 dB .. +5 dB, 0.41 dB per step) were chosen on the fire_alarm recordings
(benchmarks/features.py --levels prints the level percentiles): band levels of
background clips span about -107 dB (0.5th percentile) to +4 dB (max), median
-46 dB; alarm clips put their tones at -20 dB to +2 dB over a quiet floor near
-77 dB (median). Nothing clips at the top; the bottom clamps only the quietest
~2% of bands and digital silence (energy 0, level 0).

The model sees float q / 128 (INPUT_SCALE); its int8 input tensor has scale 1/128
and zero point 0, so the int8 features are the tensor's bytes unchanged.

`compute_frame` and `compute` call the cmsisdsp functions the C code calls (and
numpy int64 for its plain-C power and mel sums), frame by frame. `compute_batch` is the fast path for training sets: the same
integer arithmetic, with the elementwise steps done on whole batches (numpy
int64 for the powers and mel sums, exact as in C).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache

import cmsisdsp as dsp
import numpy as np

from .spec import Audio, Features, ProjectSpec

# How to make the front end cheaper per second of audio, for the budget checks' messages.
CHEAPER_FRAMES = "make the frames longer (features.frame_step) or the FFT smaller (features.fft_size)"
LONGER_FRAMES = "the frames longer (features.frame_step)"

INPUT_SCALE = 1.0 / 128.0
INPUT_ZERO_POINT = 0

LOG_TABLE_BITS = 6   # mantissa bits looked up after the leading one
LOG_FRAC_BITS = 8    # fractional bits of the log2 level
GAIN_SHIFT = 16      # the int8 gain is a fixed-point multiplier of 2^-GAIN_SHIFT
MAX_SHIFT = 15       # largest normalising shift (an all-zero frame)
Q15_MAX = 32767
DB_PER_OCTAVE = 10.0 * math.log10(2.0)  # the energies are powers: 3.01 dB per log2 unit
SHIFT_OCTAVES = 2    # log2 units of energy per bit of normalising shift (power = amplitude^2)


@dataclass(frozen=True)
class FrontEnd:
    """Every constant of the front end; the C module is rendered from these values."""

    kind: str
    sample_rate: int
    clip_samples: int
    frame_length: int
    frame_step: int
    fft_size: int
    num_frames: int
    num_bins: int          # feature values per frame (spectrum bins or mel bands)
    spectrum_bins: int     # fft_size / 2 + 1 magnitudes
    hop_frames: int
    window: tuple[int, ...]          # q15, frame_length values
    mel_start: tuple[int, ...]       # first spectrum bin of each band
    mel_length: tuple[int, ...]      # bins in each band
    mel_offset: tuple[int, ...]      # where each band's weights start in mel_weights
    mel_weights: tuple[int, ...]     # q15 weights of all bands, concatenated
    mel_edges_hz: tuple[float, ...]  # num_bins + 2 band edges (documentation and tests)
    log_table: tuple[int, ...]       # 2^LOG_TABLE_BITS fractional log2 values
    log_table_bits: int
    log_frac_bits: int
    max_shift: int                   # normalising shift of a silent frame
    log_lo: int                      # log level mapped to -128
    log_hi: int                      # log level mapped to 127
    gain: int                        # 255 / (log_hi - log_lo) in units of 2^-gain_shift
    gain_shift: int
    mel_bands: int = 0               # bands the mfcc DCT reads (num_bins for log_mel)
    dct: tuple[int, ...] = ()        # mfcc: q15 DCT-II, num_bins rows of mel_bands
    cep_gain: tuple[int, ...] = ()   # mfcc: per coefficient, in units of 2^-CEP_SHIFT
    cep_bias: tuple[int, ...] = ()   # mfcc: added before the shift (rounding, and +128 for c1..)
    cep_shift: int = 0
    cepstral_range_db: float = 0.0   # mfcc: c1.. map +-this many dB onto int8

    @property
    def hop_samples(self) -> int:
        """Samples per streaming hop: the one place the hop is computed."""
        return self.hop_frames * self.frame_step

    @property
    def hop_us(self) -> int:
        """Microseconds per hop, rounded down (the firmware's MF_HOP_US)."""
        return self.hop_samples * 1_000_000 // self.sample_rate

    @property
    def frame_us(self) -> int:
        """Microseconds between frame starts, rounded down."""
        return self.frame_step * 1_000_000 // self.sample_rate

    def describe(self) -> str:
        """One line for humans: the input map and how it is made."""
        return (f"{self.num_frames} frames x {self.num_bins} {self.kind} bins ({self.frame_length}-"
                f"sample frames every {self.frame_step} samples at {self.sample_rate} Hz); hop "
                f"{self.hop_samples} samples ({1000 * self.hop_samples / self.sample_rate:g} ms)")

    def constants(self) -> dict:
        """JSON-able values of every field (for generated-file hashes)."""
        return asdict(self)

    def feature_constants(self) -> dict:
        """The fields the int8 features of a clip depend on (not the streaming hop): cache keys."""
        values = asdict(self)
        del values["hop_frames"]
        return values


# --------------------------------------------------------------------------- design

def _window(kind: str, n: int) -> tuple[int, ...]:
    """Periodic window in q15 (as for spectral analysis), exactly symmetric about n/2."""
    i = np.minimum(np.arange(n), n - np.arange(n))
    if kind == "hann":
        w = 0.5 - 0.5 * np.cos(2 * np.pi * i / n)
    elif kind == "hamming":
        w = 0.54 - 0.46 * np.cos(2 * np.pi * i / n)
    else:
        w = np.ones(n)
    return tuple(int(v) for v in np.clip(np.round(w * Q15_MAX), 0, Q15_MAX))


def _hz_to_mel(hz):
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def _mel_to_hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def _mel_filters(sample_rate: int, fft_size: int, bands: int, fmin: float, fmax: float):
    """Triangular HTK-mel filters over the spectrum bins, in q15, with a non-empty support.

    A band narrower than a bin (low bands of a short FFT) keeps its nearest bin at
    full weight, so every band carries information and none is constantly zero.
    """
    edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), bands + 2))
    freqs = np.arange(fft_size // 2 + 1) * sample_rate / fft_size
    starts, lengths, offsets, weights = [], [], [], []
    for b in range(bands):
        lo, mid, hi = edges[b], edges[b + 1], edges[b + 2]
        up = (freqs - lo) / (mid - lo)
        down = (hi - freqs) / (hi - mid)
        w = np.clip(np.minimum(up, down), 0.0, 1.0)
        q = np.round(w * Q15_MAX).astype(np.int64)
        nz = np.flatnonzero(q)
        if len(nz) == 0:
            nz = np.array([int(np.argmin(np.abs(freqs - mid)))])
            q[nz] = Q15_MAX
        first, last = int(nz[0]), int(nz[-1])
        starts.append(first)
        lengths.append(last - first + 1)
        offsets.append(len(weights))
        weights.extend(int(v) for v in q[first:last + 1])
    return (tuple(starts), tuple(lengths), tuple(offsets), tuple(weights),
            tuple(float(round(e, 3)) for e in edges))


def _log_table(bits: int, frac: int) -> tuple[int, ...]:
    """log2(1 + (i + 0.5) / 2^bits) in units of 2^-frac: the mantissa's share of log2."""
    return tuple(int(round(math.log2(1.0 + (i + 0.5) / 2 ** bits) * 2 ** frac))
                 for i in range(2 ** bits))


def _full_scale_level(window: tuple[int, ...], fft_size: int, kind: str) -> float:
    """log2 of the energy value of a full-scale sine at a bin centre (the 0 dB reference).

    |X| = A * sum(window) / 2 and arm_rfft_q15 scales by 1/fft_size; the energy is
    |X|^2; a unit-weight mel band multiplies by Q15_MAX.
    """
    mag = Q15_MAX * (sum(window) / Q15_MAX) / 2.0 / fft_size  # A = Q15_MAX, window in q15
    return math.log2(mag * mag * (Q15_MAX if kind == "log_mel" else 1)) + SHIFT_OCTAVES * MAX_SHIFT


CEP_SHIFT = 32  # the cepstral gains are fixed-point multipliers of 2^-CEP_SHIFT
Q15_ONE = 1 << 15


def _dct(coefficients: int, bands: int) -> tuple[int, ...]:
    """Orthonormal DCT-II in q15, row k = coefficient k: sqrt(2/B) cos(pi k (2b + 1) / 2B),
    row 0 divided by sqrt(2)."""
    k = np.arange(coefficients)[:, None]
    b = np.arange(bands)[None, :]
    d = np.sqrt(2.0 / bands) * np.cos(np.pi * k * (2 * b + 1) / (2 * bands))
    d[0] /= np.sqrt(2.0)
    return tuple(int(v) for v in np.round(d * Q15_ONE).astype(np.int64).ravel())


def _cepstral_scaling(dct: tuple[int, ...], coefficients: int, bands: int, span: int,
                      range_db: float) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Per coefficient: the gain and bias that put c0's whole range (every x_b = span) and
    c1..'s [-range_db, +range_db] onto 0..255 (then -128)."""
    c0_max = span * sum(dct[:bands])  # in q15 x level units
    reach = range_db / DB_PER_OCTAVE * (1 << LOG_FRAC_BITS) * Q15_ONE  # +-range, same units
    gains = [int(round(255 * 2 ** CEP_SHIFT / c0_max))]
    gains += [int(round(127.5 * 2 ** CEP_SHIFT / reach))] * (coefficients - 1)
    half = 1 << (CEP_SHIFT - 1)
    biases = [half] + [(128 << CEP_SHIFT) + half] * (coefficients - 1)
    return tuple(gains), tuple(biases)


def design(spec: ProjectSpec) -> FrontEnd:
    """The front end of `spec`: every constant, computed once from the spec values."""
    return _design(spec.audio, spec.features, spec.detection.hop_frames)


@lru_cache(maxsize=16)
def _design(a: Audio, f: Features, hop_frames: int) -> FrontEnd:
    window = _window(f.window, f.frame_length)
    if f.kind in ("log_mel", "mfcc"):
        fmax = f.fmax_hz if f.fmax_hz is not None else a.sample_rate / 2
        starts, lengths, offsets, weights, edges = _mel_filters(
            a.sample_rate, f.fft_size, f.mel_bands, f.fmin_hz, fmax)
    else:
        starts = lengths = offsets = weights = edges = ()
    one = 1 << LOG_FRAC_BITS
    ref = _full_scale_level(window, f.fft_size, "spectrogram" if f.kind == "spectrogram" else "log_mel")
    log_lo = max(0, int(round((ref + f.floor_db / DB_PER_OCTAVE) * one)))
    log_hi = int(round((ref + f.ceiling_db / DB_PER_OCTAVE) * one))
    gain = int(round(255 * (1 << GAIN_SHIFT) / (log_hi - log_lo)))
    clip_samples = a.clip_samples
    cepstral = {}
    if f.kind == "mfcc":
        dct = _dct(f.mfcc_coefficients, f.mel_bands)
        gains, biases = _cepstral_scaling(dct, f.mfcc_coefficients, f.mel_bands, log_hi - log_lo,
                                          f.cepstral_range_db)
        cepstral = dict(dct=dct, cep_gain=gains, cep_bias=biases, cep_shift=CEP_SHIFT,
                        cepstral_range_db=f.cepstral_range_db)
    bins = {"spectrogram": f.fft_size // 2 + 1, "log_mel": f.mel_bands,
            "mfcc": f.mfcc_coefficients}[f.kind]
    return FrontEnd(
        kind=f.kind, sample_rate=a.sample_rate, clip_samples=clip_samples,
        frame_length=f.frame_length, frame_step=f.frame_step, fft_size=f.fft_size,
        num_frames=1 + (clip_samples - f.frame_length) // f.frame_step,
        num_bins=bins, mel_bands=f.mel_bands if f.kind != "spectrogram" else 0,
        spectrum_bins=f.fft_size // 2 + 1, hop_frames=hop_frames,
        window=window, mel_start=starts, mel_length=lengths, mel_offset=offsets,
        mel_weights=weights, mel_edges_hz=edges,
        log_table=_log_table(LOG_TABLE_BITS, LOG_FRAC_BITS), log_table_bits=LOG_TABLE_BITS,
        log_frac_bits=LOG_FRAC_BITS, max_shift=MAX_SHIFT, log_lo=log_lo, log_hi=log_hi, gain=gain,
        gain_shift=GAIN_SHIFT, **cepstral)


# ------------------------------------------------------------------ the reference

@lru_cache(maxsize=16)
def _rfft(fft_size: int):
    inst = dsp.arm_rfft_instance_q15()
    status = dsp.arm_rfft_init_q15(inst, fft_size, 0, 1)
    if status != 0:
        raise ValueError(f"arm_rfft_init_q15({fft_size}) failed with status {status}")
    return inst


@lru_cache(maxsize=16)
def _arrays(fe: FrontEnd) -> dict:
    """numpy views of the tables, built once per front end."""
    dense = np.zeros((fe.spectrum_bins, max(1, len(fe.mel_start))), dtype=np.int64)
    for b, (s, n, o) in enumerate(zip(fe.mel_start, fe.mel_length, fe.mel_offset)):
        dense[s:s + n, b] = fe.mel_weights[o:o + n]
    return dict(window=np.array(fe.window, dtype=np.int16),
                weights=np.array(fe.mel_weights, dtype=np.int16),
                dense=dense, log_table=np.array(fe.log_table, dtype=np.int64))


def headroom(absmax: np.ndarray | int, max_shift: int = MAX_SHIFT) -> np.ndarray:
    """The largest s <= max_shift with absmax << s <= Q15_MAX (absmax saturated at Q15_MAX)."""
    m = np.asarray(absmax, dtype=np.int64)
    s = np.zeros(m.shape, dtype=np.int64)
    for k in range(1, max_shift + 1):
        s = np.where((m << k) <= Q15_MAX, k, s)
    return s


def log2_fixed(v: np.ndarray, fe: FrontEnd) -> np.ndarray:
    """The integer log2 of non-negative int64 energies (0 -> 0), as the C code computes it."""
    v = np.asarray(v, dtype=np.int64)
    table = _arrays(fe)["log_table"]
    t = fe.log_table_bits
    n = np.zeros(v.shape, dtype=np.int64)  # floor(log2 v), exact for any int64
    rest = v.copy()
    for step in (32, 16, 8, 4, 2, 1):
        big = rest >= (np.int64(1) << step)
        n += np.where(big, step, 0)
        rest = np.where(big, rest >> step, rest)
    down = np.maximum(n - t, 0)
    up = np.maximum(t - n, 0)
    idx = ((v >> down) << up) & ((1 << t) - 1)
    level = (n << fe.log_frac_bits) + table[idx]
    return np.where(v > 0, level, 0)


def levels(energy: np.ndarray, shift: np.ndarray, fe: FrontEnd) -> np.ndarray:
    """Log levels of energies [..., bins] of frames normalised by `shift` [...]."""
    energy = np.asarray(energy, dtype=np.int64)
    back = ((SHIFT_OCTAVES * (fe.max_shift - np.asarray(shift, dtype=np.int64)))
            << fe.log_frac_bits)[..., None]
    return np.where(energy > 0, log2_fixed(energy, fe) + back, 0)


def to_int8(level: np.ndarray, fe: FrontEnd) -> np.ndarray:
    """Log levels [..., bands] to int8 features [..., num_bins]: for spectrogram and log_mel,
    clamp to [log_lo, log_hi], scale onto 0..255, shift by -128; for mfcc, the cepstrum."""
    span = np.clip(np.asarray(level, dtype=np.int64), fe.log_lo, fe.log_hi) - fe.log_lo
    if fe.kind == "mfcc":
        return cepstrum_to_int8(cepstrum(span, fe), fe)
    q = (span * fe.gain + (1 << (fe.gain_shift - 1))) >> fe.gain_shift
    return (np.minimum(q, 255) - 128).astype(np.int8)


def cepstrum(x: np.ndarray, fe: FrontEnd) -> np.ndarray:
    """c_k = sum_b dct[k][b] * x_b of clamped band levels x [..., mel_bands] (int64, exact)."""
    dct = np.array(fe.dct, dtype=np.int64).reshape(fe.num_bins, fe.mel_bands)
    return np.asarray(x, dtype=np.int64) @ dct.T


def cepstrum_to_int8(c: np.ndarray, fe: FrontEnd) -> np.ndarray:
    """Coefficients [..., num_bins] onto int8 (see the module docstring, mfcc)."""
    v = np.asarray(c, dtype=np.int64) * np.array(fe.cep_gain, dtype=np.int64) \
        + np.array(fe.cep_bias, dtype=np.int64)
    q = np.where(v < 0, 0, v >> fe.cep_shift)
    return (np.minimum(q, 255) - 128).astype(np.int8)


def spectrum_power(spectrum: np.ndarray) -> np.ndarray:
    """Exact powers re*re + im*im (int64, at most 2^31) of interleaved q15 bins [..., 2*bins]."""
    x = np.asarray(spectrum, dtype=np.int64)
    return x[..., 0::2] * x[..., 0::2] + x[..., 1::2] * x[..., 1::2]


def frame_levels(fe: FrontEnd, frame: np.ndarray) -> np.ndarray:
    """Log levels [bands] of one int16 frame (spectrum bins or mel bands), through the
    cmsisdsp calls the C code makes."""
    frame = np.asarray(frame, dtype=np.int16)
    if frame.shape != (fe.frame_length,):
        raise ValueError(f"a frame has {fe.frame_length} samples, got shape {frame.shape}")
    tables = _arrays(fe)
    shift = int(headroom(dsp.arm_absmax_no_idx_q15(frame), fe.max_shift))
    windowed = dsp.arm_mult_q15(dsp.arm_shift_q15(frame, shift), tables["window"])
    if fe.fft_size > fe.frame_length:
        windowed = np.concatenate([windowed, np.zeros(fe.fft_size - fe.frame_length, np.int16)])
    spectrum = dsp.arm_rfft_q15(_rfft(fe.fft_size), windowed)
    power = spectrum_power(spectrum[:2 * fe.spectrum_bins])
    if fe.kind == "spectrogram":
        energy = power
    else:  # log_mel and mfcc: the mel bands
        w = tables["weights"].astype(np.int64)
        energy = np.array([int(np.dot(power[s:s + n], w[o:o + n]))
                           for s, n, o in zip(fe.mel_start, fe.mel_length, fe.mel_offset)],
                          dtype=np.int64)
    return levels(energy, np.int64(shift), fe)


def compute_frame(fe: FrontEnd, frame: np.ndarray) -> np.ndarray:
    """int8 features [num_bins] of one int16 frame of frame_length samples."""
    return to_int8(frame_levels(fe, frame), fe)


def frames(fe: FrontEnd, samples: np.ndarray) -> np.ndarray:
    """The [count, frame_length] frames of a stream of int16 samples (a read-only view)."""
    samples = np.ascontiguousarray(samples, dtype=np.int16)
    count = 1 + (len(samples) - fe.frame_length) // fe.frame_step
    if len(samples) < fe.frame_length:
        raise ValueError(f"need at least {fe.frame_length} samples, got {len(samples)}")
    return np.lib.stride_tricks.as_strided(
        samples, shape=(count, fe.frame_length),
        strides=(samples.strides[0] * fe.frame_step, samples.strides[0]), writeable=False)


def compute(fe: FrontEnd, clip: np.ndarray) -> np.ndarray:
    """int8 features [frames, num_bins] of int16 samples, frame by frame (the reference).

    A clip of clip_samples gives num_frames frames; a longer stream gives every frame
    that fits (the offline view of the streaming front end).
    """
    return np.stack([compute_frame(fe, fr) for fr in frames(fe, clip)])


def batch_levels(fe: FrontEnd, frame_rows: np.ndarray) -> np.ndarray:
    """Log levels [M, bands] of int16 frames [M, frame_length], batched (same integers)."""
    tables = _arrays(fe)
    rows = frame_rows.astype(np.int32)
    shift = headroom(np.minimum(np.abs(rows).max(axis=1), Q15_MAX), fe.max_shift)
    shifted = (rows << shift[:, None].astype(np.int32)).astype(np.int16)  # fits by construction
    windowed = dsp.arm_mult_q15(shifted.reshape(-1), np.tile(tables["window"], len(rows)))
    windowed = windowed.reshape(len(rows), fe.frame_length)
    if fe.fft_size > fe.frame_length:
        windowed = np.pad(windowed, ((0, 0), (0, fe.fft_size - fe.frame_length)))
    inst = _rfft(fe.fft_size)
    keep = 2 * fe.spectrum_bins
    spectra = np.stack([dsp.arm_rfft_q15(inst, row)[:keep] for row in windowed])
    energy = spectrum_power(spectra)
    if fe.kind != "spectrogram":
        energy = energy @ tables["dense"]
    return levels(energy, shift, fe)


def compute_batch(fe: FrontEnd, clips: np.ndarray) -> np.ndarray:
    """int8 features [N, num_frames, num_bins] of int16 clips [N, clip_samples]: the fast path."""
    clips = np.ascontiguousarray(clips, dtype=np.int16)
    if clips.ndim != 2 or clips.shape[1] != fe.clip_samples:
        raise ValueError(f"compute_batch takes int16 clips [N, {fe.clip_samples}], got {clips.shape}")
    n = len(clips)
    if n == 0:
        return np.zeros((0, fe.num_frames, fe.num_bins), dtype=np.int8)
    idx = np.arange(fe.num_frames)[:, None] * fe.frame_step + np.arange(fe.frame_length)
    rows = clips[:, idx].reshape(-1, fe.frame_length)
    return to_int8(batch_levels(fe, rows), fe).reshape(n, fe.num_frames, fe.num_bins)


# ---------------------------------------------------------------- C template values

def template_values(fe: FrontEnd) -> dict:
    """What templates/common/mf_features.*.j2 and mf_stream.*.j2 read, as `fe` in their context.

    Every number in the generated C comes from here: the FrontEnd fields, plus the
    two the C code needs that follow from them (the ring size and the CMSIS init).
    """
    values = fe.constants()
    values.update(
        is_log_mel=fe.kind in ("log_mel", "mfcc"),  # mel bands (mfcc: then the DCT)
        is_mfcc=fe.kind == "mfcc",
        hop_samples=fe.hop_samples,
        history_samples=fe.frame_length + fe.hop_samples,
        rfft_init=f"arm_rfft_init_{fe.fft_size}_q15",
        log_table_mask=(1 << fe.log_table_bits) - 1,
        shift_octaves=SHIFT_OCTAVES,
        input_scale_inv=round(1 / INPUT_SCALE),
        input_zero_point=INPUT_ZERO_POINT,
    )
    return values
