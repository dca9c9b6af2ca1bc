"""Why micforge's MFCC is an integer DCT of its own log-mel levels and not CMSIS-DSP's
arm_mfcc_q15: how each one's cepstral *shape* (c1..c12, level-independent in theory) holds up as
the same frame gets quieter.

    python benchmarks/mfcc_choice.py

For one 512-sample frame (two tones and a little noise) scaled from 0 dB to -80 dB, prints c0..c5
of both, and the mean absolute change of c1..c12 from the 0 dB frame as a share of the 0 dB
frame's own c1..c12 spread (0% = the shape is kept). arm_mfcc_q15 runs through the cmsisdsp
package with its own mel filters and DCT (cmsisdsp.mfcc, 40 bands, 13 coefficients, Hann);
micforge's front end is keywords' spec with kind: mfcc (40 bands, 13 coefficients).
"""

from __future__ import annotations

import numpy as np

import cmsisdsp as dsp
import cmsisdsp.fixedpoint as fix
import cmsisdsp.mfcc as mfcc
from cmsisdsp.datatype import F32

from generator import features as F
from generator.spec import load_spec
from generator.paths import REPO

FFT, BANDS, COEFFS, RATE = 512, 40, 13, 16000


def arm_mfcc():
    pos, length, filters = mfcc.melFilterMatrix(F32, 0, RATE / 2, BANDS, RATE, FFT)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(FFT) / FFT)
    inst = dsp.arm_mfcc_instance_q15()
    status = dsp.arm_mfcc_init_q15(inst, FFT, BANDS, COEFFS, fix.toQ15(mfcc.dctMatrix(F32, BANDS, COEFFS)),
                                   pos, length, fix.toQ15(filters), fix.toQ15(window))
    assert status == 0, status
    scratch = np.zeros(2 * FFT, dtype=np.int32)
    return lambda x: np.array(dsp.arm_mfcc_q15(inst, x, scratch)[1], dtype=np.int64)


def ours():
    spec = load_spec(REPO / "projects" / "keywords.yaml").spec
    features = spec.features.model_copy(update={"kind": "mfcc", "mel_bands": BANDS,
                                                 "mfcc_coefficients": COEFFS})
    fe = F._design(spec.audio, features, spec.detection.hop_frames)
    return lambda x: F.compute_frame(fe, x).astype(np.int64)


def main() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(FFT) / RATE
    frame = 0.5 * np.sin(2 * np.pi * 440 * t) + 0.3 * np.sin(2 * np.pi * 1800 * t) \
        + 0.05 * rng.normal(size=FFT)
    runs = {"arm_mfcc_q15": arm_mfcc(), "micforge": ours()}
    ref = {}
    print(f"{'level':>6}  {'arm_mfcc_q15 c0..c5':<40} shape   {'micforge int8 c0..c5':<28} shape")
    for db in (0, -10, -20, -30, -40, -50, -60, -70, -80):
        x = np.round(frame * 32767 * 10 ** (db / 20)).astype(np.int16)
        row = f"{db:4d} dB"
        for name, run in runs.items():
            c = run(x)
            ref.setdefault(name, c)
            spread = np.mean(np.abs(ref[name][1:] - np.mean(ref[name][1:])))
            change = np.mean(np.abs(c[1:] - ref[name][1:])) / spread
            width = 40 if name == "arm_mfcc_q15" else 28
            row += f"  {str(c[:6]):<{width}} {100 * change:4.0f}%"
        print(row)


if __name__ == "__main__":
    main()
