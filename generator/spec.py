"""The project spec: one YAML file describing a sound classifier and its targets.

`load_spec(path)` reads the YAML, validates it against `ProjectSpec` (strict:
unknown keys are errors) and returns a `Project` that also knows where the
spec lives, so relative paths and error positions resolve against it.
Cross-checks against board files live in `checks.py`, not here: this module
only knows what a well-formed spec looks like.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from . import yamlpos
from .errors import Problem, SpecError
from .validate import validate
from .yamlpos import Positions


class Strict(BaseModel):
    """Base for every spec section: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- audio

class Audio(Strict):
    sample_rate: int = Field(16000, ge=4000, le=48000,
                             description="Sample rate in Hz of the microphone stream and of the "
                                         "training audio (recordings are resampled to it).")
    clip_seconds: float = Field(1.0, gt=0.1, le=10.0,
                                description="Length in seconds of the window the model classifies. "
                                            "Recordings are cut into windows of this length.")

    @property
    def clip_samples(self) -> int:
        return round(self.sample_rate * self.clip_seconds)


# ------------------------------------------------------------------------ features

_RFFT_Q15_SIZES = (32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)


class Features(Strict):
    kind: Literal["spectrogram", "log_mel", "mfcc"] = Field(
        "log_mel", description="Front end. 'spectrogram': the log power of the guide's q15 FFT, "
                               "fft_size/2+1 bins. 'log_mel': the bin powers summed into mel "
                               "bands and log-compressed, all in q15 (smaller, no resize). "
                               "'mfcc': the log-mel levels through an exact integer DCT-II, "
                               "`mfcc_coefficients` per frame.")
    frame_length: int = Field(512, ge=16, le=8192,
                              description="Samples per analysis frame (the window length).")
    frame_step: int = Field(512, ge=1, le=8192,
                            description="Samples between the starts of consecutive frames; "
                                        "also the granularity of the streaming hop.")
    fft_size: int = Field(512, description="FFT length; a power of two from 32 to 8192 and at "
                                           "least frame_length (frames are zero-padded).")
    window: Literal["hann", "hamming", "rectangular"] = Field(
        "hann", description="Window applied in q15 before the FFT.")
    mel_bands: int = Field(32, ge=4, le=128,
                           description="Number of mel bands (log_mel and mfcc).")
    fmin_hz: float = Field(0.0, ge=0, description="Lowest mel band edge in Hz (log_mel and mfcc).")
    fmax_hz: float | None = Field(None, gt=0,
                                  description="Highest mel band edge in Hz; default sample_rate/2 "
                                              "(log_mel and mfcc).")
    mfcc_coefficients: int = Field(13, ge=2, le=64,
                                   description="Cepstral coefficients per frame, c0 (the band "
                                               "levels' mean) first (mfcc only; at most "
                                               "mel_bands).")
    cepstral_range_db: float = Field(100.0, gt=0, le=400,
                                     description="Coefficients c1.. from -range to +range dB map "
                                                 "onto int8 -128..127, beyond it they clamp; c0 "
                                                 "maps its whole range (mfcc only).")
    floor_db: float = Field(-100.0, ge=-150, le=0,
                            description="Level mapped to int8 -128, in dB relative to full scale "
                                        "(0 dB: a full-scale sine at a bin centre; for log_mel in "
                                        "a unit-weight band). Quieter values clamp to -128.")
    ceiling_db: float = Field(5.0, ge=-60, le=40,
                              description="Level mapped to int8 127, in dB relative to full scale; "
                                          "louder values clamp to 127.")

    @field_validator("fft_size")
    @classmethod
    def _fft_power_of_two(cls, v: int) -> int:
        if v not in _RFFT_Q15_SIZES:
            raise ValueError(f"fft_size must be one of {', '.join(map(str, _RFFT_Q15_SIZES))} "
                             f"(the sizes arm_rfft_q15 supports), got {v}")
        return v

    @model_validator(mode="after")
    def _frame_fits_fft(self) -> "Features":
        if self.frame_length > self.fft_size:
            raise ValueError(f"frame_length ({self.frame_length}) must not exceed fft_size "
                             f"({self.fft_size}); raise fft_size to the next power of two")
        if self.frame_step > self.frame_length:
            raise ValueError(f"frame_step ({self.frame_step}) larger than frame_length "
                             f"({self.frame_length}) would skip samples")
        if self.ceiling_db - self.floor_db < 12:
            raise ValueError(f"ceiling_db ({self.ceiling_db}) must be at least 12 dB above "
                             f"floor_db ({self.floor_db}) to spread 256 int8 steps")
        return self


# ------------------------------------------------------------------------- dataset

class Split(Strict):
    by: Literal["hash", "recording", "fold", "speaker", "lists"] = Field(
        "hash", description="How files are assigned to splits. 'hash': a seeded sha256 of each "
                            "clip's group key (its speaker id for '<speaker>_nohash_<n>' names, "
                            "else its recording and time segment), so related clips never straddle "
                            "splits; windows of one recording may sit in several splits (the test "
                            "figure then partly measures memory). 'recording': the same with whole "
                            "recordings (or speakers) as groups: every window of a recording goes "
                            "to one split, so test recordings are unheard in training. 'speaker': "
                            "like hash, and an error if no file name carries a speaker id. 'fold': "
                            "ESC-50 folds (layout: esc50). 'lists': the dataset's "
                            "validation_list.txt/testing_list.txt (layout: speech_commands).")
    validation: float = Field(0.1, ge=0, lt=1, description="Fraction for validation (hash/speaker).")
    test: float = Field(0.1, ge=0, lt=1, description="Fraction for test (hash/speaker).")
    validation_folds: list[int] = Field(default_factory=list,
                                        description="Folds used for validation (by: fold).")
    test_folds: list[int] = Field(default_factory=list, description="Folds used for test (by: fold).")
    segment_seconds: float = Field(3.0, gt=0, le=600,
                                   description="Recordings are grouped in time segments of this "
                                               "length (windows named '<recording>_t<seconds>' and "
                                               "windows cut from long files); each segment is one "
                                               "group. A window overlapping a window of the same "
                                               "recording in another split is dropped.")

    @model_validator(mode="after")
    def _fractions(self) -> "Split":
        if self.validation + self.test >= 1:
            raise ValueError("validation + test must leave something to train on (sum < 1)")
        if self.by == "fold" and not (self.validation_folds and self.test_folds):
            raise ValueError("by: fold needs validation_folds and test_folds")
        return self


class Synthetic(Strict):
    clips_per_class: int = Field(40, ge=4, le=2000,
                                 description="Clips generated per class.")


class Dataset(Strict):
    root: str = Field("", description="Folder of the recordings, relative to the spec file. "
                                      "Unused for layout: synthetic.")
    layout: Literal["folders", "esc50", "speech_commands", "synthetic"] = Field(
        "folders", description="'folders': one sub-folder per class. 'esc50': audio/ and "
                               "meta/esc50.csv. 'speech_commands': one folder per word with "
                               "validation_list.txt/testing_list.txt. 'synthetic': a small "
                               "deterministic demo set of generated tones and noise, no files.")
    split: Split = Field(default_factory=Split, description="How clips are split.")
    seed: int = Field(0, description="Seed for splitting and any sampling.")
    max_clips_per_class: int | None = Field(None, ge=1,
                                            description="Cap per class (deterministic subset), "
                                                        "for quick experiments.")
    synthetic: Synthetic = Field(default_factory=Synthetic,
                                 description="Parameters of layout: synthetic.")

    @model_validator(mode="after")
    def _root_needed(self) -> "Dataset":
        if self.layout != "synthetic" and not self.root:
            raise ValueError(f"layout '{self.layout}' needs root: the folder of the recordings")
        needs = {"fold": "esc50", "lists": "speech_commands"}.get(self.split.by)
        if needs and self.layout != needs:
            raise ValueError(f"split by: {self.split.by} needs layout: {needs}, not '{self.layout}'")
        if self.layout == "synthetic" and self.split.by != "hash":
            raise ValueError("layout: synthetic splits by: hash only (its clips have no speakers, "
                             "folds or lists)")
        return self


# -------------------------------------------------------------------- augmentation

class Range(Strict):
    min: float = Field(description="Lower bound.")
    max: float = Field(description="Upper bound.")

    @model_validator(mode="after")
    def _ordered(self) -> "Range":
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max})")
        return self


class Shift(Strict):
    probability: float = Field(0.5, ge=0, le=1, description="Chance of a circular time shift.")
    max_seconds: float = Field(0.2, ge=0, le=5, description="Largest shift either way, in seconds.")


class Pitch(Strict):
    probability: float = Field(0.5, ge=0, le=1,
                               description="Chance of a pitch shift (duration kept), so a detector "
                                           "generalises across tones (alarms of other devices, "
                                           "other voices).")
    semitones: Range = Field(default_factory=lambda: Range(min=-3, max=3),
                             description="Pitch shift range in semitones (12 = one octave).")


class Speed(Strict):
    probability: float = Field(0.3, ge=0, le=1,
                               description="Chance of a speed perturbation: resampling that moves "
                                           "pitch and tempo together, cut or zero-padded back to "
                                           "the clip length.")
    factor: Range = Field(default_factory=lambda: Range(min=0.9, max=1.1),
                          description="Speed factor range (1.1: 10% faster and higher).")

    @field_validator("factor")
    @classmethod
    def _positive(cls, v: Range) -> Range:
        if v.min < 0.5 or v.max > 2:
            raise ValueError(f"speed factors must lie in 0.5 .. 2, not {v.min:g} .. {v.max:g}")
        return v


class Mix(Strict):
    probability: float = Field(0.3, ge=0, le=1,
                               description="Chance of mixing in another training clip of the same "
                                           "label (the label is kept).")
    gain_db: Range = Field(default_factory=lambda: Range(min=-20, max=-6),
                           description="Level of the mixed-in clip relative to the clip, in dB.")


class Background(Strict):
    probability: float = Field(0.5, ge=0, le=1,
                               description="Chance that a clip of a detect class (detection.classes) "
                                           "is laid over a background: a training clip of one of "
                                           "`classes`, or a file of `folder`. The label is kept.")
    snr_db: Range = Field(default_factory=lambda: Range(min=0, max=20),
                          description="Clip-to-background ratio in dB (RMS).")
    classes: list[str] | None = Field(None,
                                      description="Classes whose training clips serve as "
                                                  "backgrounds (default: every class that does not "
                                                  "detect).")
    folder: str | None = Field(None,
                               description="A folder of your own noise recordings (any rate, "
                                           "searched recursively), relative to the spec; used "
                                           "beside `classes`, half of the time when both exist.")


class Filter(Strict):
    probability: float = Field(0.3, ge=0, le=1,
                               description="Chance of colouring the clip like another microphone: "
                                           "one of a low-pass, high-pass or band-pass filter, "
                                           "chosen at random.")
    low_pass_hz: Range = Field(default_factory=lambda: Range(min=2000, max=7500),
                               description="Low-pass cutoff range in Hz.")
    high_pass_hz: Range = Field(default_factory=lambda: Range(min=50, max=500),
                                description="High-pass cutoff range in Hz.")
    band_pass_center_hz: Range = Field(default_factory=lambda: Range(min=500, max=4000),
                                       description="Band-pass centre range in Hz (bandwidth 1 to "
                                                   "2 times the centre).")


class Gain(Strict):
    probability: float = Field(0.5, ge=0, le=1, description="Chance of a gain change.")
    db: Range = Field(default_factory=lambda: Range(min=-6, max=6),
                      description="Gain range in dB (louder clips clip at int16, as an ADC would).")


class Silence(Strict):
    probability: float = Field(0.2, ge=0, le=1, description="Chance of silencing a random stretch.")
    max_fraction: float = Field(0.3, ge=0, le=1,
                                description="Longest silenced stretch, as a fraction of the clip.")


class Noise(Strict):
    probability: float = Field(0.5, ge=0, le=1, description="Chance of adding noise.")
    snr_db: Range = Field(default_factory=lambda: Range(min=10, max=30),
                          description="Signal-to-noise ratio range in dB.")
    colour_decay_db: Range = Field(default_factory=lambda: Range(min=-6, max=0),
                                   description="Spectral slope of the noise in dB per octave: 0 "
                                               "white, -3 pink, -6 brown (drawn in this range).")


class SpecAugment(Strict):
    probability: float = Field(0.5, ge=0, le=1,
                               description="Chance, per training example and epoch, of masking its "
                                           "int8 feature map (SpecAugment, Park et al. 2019). "
                                           "Training only: validation, test and the device never "
                                           "see masks.")
    time_masks: int = Field(1, ge=0, le=8, description="Time masks per masked example.")
    max_frames: int = Field(4, ge=1, le=256, description="Widest time mask, in frames.")
    freq_masks: int = Field(1, ge=0, le=8, description="Frequency masks per masked example.")
    max_bins: int = Field(4, ge=1, le=256, description="Widest frequency mask, in bins.")


class Augmentation(Strict):
    copies: int = Field(0, ge=0, le=20, description="Augmented copies added per training clip "
                                                    "(0 disables the audio effects; spec_augment "
                                                    "still applies).")
    seed: int = Field(0, description="Seed; the same seed and clips give the same augmented bytes.")
    shift: Shift = Field(default_factory=Shift, description="Circular time shift.")
    pitch: Pitch = Field(default_factory=Pitch, description="Pitch shift (duration kept).")
    speed: Speed = Field(default_factory=Speed, description="Speed perturbation (resampling).")
    mix: Mix = Field(default_factory=Mix, description="Same-label mixing.")
    background: Background = Field(default_factory=Background,
                                   description="Detect-class clips over backgrounds.")
    filter: Filter = Field(default_factory=Filter, description="Microphone-like colouring.")
    gain: Gain = Field(default_factory=Gain, description="Gain change.")
    silence: Silence = Field(default_factory=Silence, description="A silenced stretch.")
    noise: Noise = Field(default_factory=Noise, description="White or coloured noise at an SNR.")
    spec_augment: SpecAugment = Field(default_factory=SpecAugment,
                                      description="Time and frequency masks on the feature maps, "
                                                  "at training time only.")


# --------------------------------------------------------------------------- model

class GuideCnn(Strict):
    architecture: Literal["guide_cnn"] = Field(description="The guide's CNN: one 8x8/2 conv, "
                                                           "2x2 max-pool, dropout, dense.")
    filters: int = Field(8, ge=1, le=256, description="Convolution filters.")
    kernel: int = Field(8, ge=1, le=16, description="Square kernel size.")
    stride: int = Field(2, ge=1, le=8, description="Convolution stride.")
    dropout: float = Field(0.25, ge=0, lt=1, description="Dropout before the dense layer.")


class DsCnn(Strict):
    architecture: Literal["ds_cnn"] = Field(description="Depthwise-separable CNN for keywords "
                                                        "(Hello Edge, Zhang et al. 2017).")
    filters: int = Field(64, ge=4, le=512, description="Channels of every block.")
    blocks: int = Field(4, ge=1, le=8, description="Depthwise-separable blocks after the first conv.")
    first_kernel: tuple[int, int] = Field((10, 4), description="First conv kernel (time, freq).")
    first_stride: tuple[int, int] = Field((2, 2), description="First conv stride (time, freq).")
    dropout: float = Field(0.2, ge=0, lt=1, description="Dropout before the classifier.")


class CompactCnn(Strict):
    architecture: Literal["compact_cnn"] = Field(description="A small CNN sized for the RP2040 "
                                                             "budget: strided convs, pooling, dense.")
    filters: list[int] = Field([8, 16], min_length=1, max_length=4,
                               description="Filters of each strided 3x3 convolution.")
    kernel: int = Field(3, ge=1, le=9, description="Square kernel size of every convolution.")
    first_stride: int = Field(2, ge=1, le=4, description="Stride of the first convolution (the "
                                                         "others use 2); 4 quarters the cost of "
                                                         "every layer after it.")
    dropout: float = Field(0.2, ge=0, lt=1, description="Dropout before the dense layer.")


Model = Annotated[Union[GuideCnn, DsCnn, CompactCnn], Field(discriminator="architecture")]


class Training(Strict):
    epochs: int = Field(30, ge=1, le=1000, description="Upper bound on epochs (early stopping ends sooner).")
    batch_size: int = Field(32, ge=1, le=4096, description="Batch size.")
    learning_rate: float = Field(1e-3, gt=0, le=1, description="Initial learning rate (Adam).")
    patience: int = Field(5, ge=1, description="Epochs without validation improvement before stopping.")
    class_weights: Literal["balanced", "none"] = Field(
        "balanced", description="'balanced' weighs classes inversely to their frequency.")
    seed: int = Field(0, description="Seed for weights init and shuffling (ops are deterministic).")


class Transfer(Strict):
    base: str = Field(description="Base model: another spec (.yaml, relative to this one) whose "
                                  "trained Keras model is used, or a .keras file. Its body (all "
                                  "but the last Dense layer) replaces `model`; its input must "
                                  "equal this spec's features (frames x bins).")
    head_epochs: int = Field(10, ge=0, description="Epochs training the new head, body frozen.")
    finetune_epochs: int = Field(10, ge=0, description="Epochs fine-tuning all layers.")
    finetune_learning_rate: float = Field(1e-4, gt=0, le=1, description="Learning rate when fine-tuning.")


class Qat(Strict):
    epochs: int = Field(5, ge=1, le=1000,
                        description="Epochs of fine-tuning with fake quantization; the weights of "
                                    "the epoch with the best validation loss are kept.")
    learning_rate: float = Field(1e-4, gt=0, le=1,
                                 description="Learning rate of the fine-tuning (Adam); lower than "
                                             "training's, as it starts from the trained model.")


class Quantization(Strict):
    mode: Literal["ptq", "qat"] = Field("ptq", description="'ptq': post-training int8 "
                                                           "quantization of the trained model. "
                                                           "'qat': quantization-aware training: the "
                                                           "trained model is fine-tuned with fake "
                                                           "quantization (`qat`), then converted "
                                                           "to int8 as ptq is.")
    representative_samples: int = Field(200, ge=1, le=10000,
                                        description="Training clips used to calibrate ranges.")
    qat: Qat | None = Field(None, description="Fine-tuning settings of mode: qat (the defaults "
                                              "when omitted); an error with mode: ptq.")

    @model_validator(mode="after")
    def _qat_needs_its_mode(self) -> "Quantization":
        if self.qat is not None and self.mode != "qat":
            raise ValueError(f"qat settings are given but mode is '{self.mode}': they apply to "
                             f"mode: qat only; set mode: qat or remove qat")
        return self


ArenaSize = Union[Literal["auto"], Annotated[int, Field(ge=1024, le=16 * 1024 * 1024)]]


class Arena(Strict):
    size: ArenaSize = Field("auto", description="Tensor arena bytes, or 'auto' for the size "
                                                "measured with the TFLM runtime plus margin.")
    margin: int = Field(512, ge=0, le=1024, description="Bytes added to the measured arena for "
                                                        "target kernels' scratch differences.")


# ---------------------------------------------------------------------- evaluation

class CrossValidation(Strict):
    method: Literal["leave_one_recording_out", "group_kfold"] = Field(
        description="'leave_one_recording_out': one fold per recording of `classes` (the detect "
                    "classes by default): the fold's model never hears that recording; the other "
                    "classes' recordings are spread over the same number of folds. 'group_kfold': "
                    "`folds` folds of whole recordings (speakers for Speech Commands names).")
    folds: int = Field(5, ge=2, le=50, description="Number of folds (group_kfold).")
    classes: list[str] = Field(default_factory=list,
                               description="Classes whose recordings are held out one at a time "
                                           "(leave_one_recording_out; default: the detect classes).")
    validation: float = Field(0.15, gt=0, lt=0.5,
                              description="Share of each fold's training groups held out for early "
                                          "stopping.")
    seed: int = Field(0, description="Seed placing recordings in folds.")
    include_test: bool = Field(False, description="Fold the test split's clips too. Off by default: "
                                                  "the folds' figures choose thresholds and trials "
                                                  "(micforge tune), and nothing that chooses may "
                                                  "see the test split.")


class Streaming(Strict):
    minutes: float = Field(60, ge=0.5, le=1440, description="Length of each evaluation stream.")
    event_gap_seconds: Range = Field(default_factory=lambda: Range(min=5, max=20),
                                     description="Gap between inserted events, drawn per event.")
    snr_db: Range = Field(default_factory=lambda: Range(min=0, max=20),
                          description="Level of an event over the background under it (RMS).")
    bed_gain_db: Range = Field(default_factory=lambda: Range(min=-6, max=6),
                               description="Gain of each background clip of the bed.")
    tolerance_seconds: float = Field(1.0, ge=0, le=10,
                                     description="An onset up to this long after an event's end "
                                                 "still detects it; other onsets in that time are "
                                                 "not false alarms.")
    debounce_seconds: float = Field(1.0, ge=0, le=60,
                                    description="Onsets of one class closer than this merge.")
    smoothing: list[int] = Field([1, 2, 3, 5], min_length=1,
                                 description="Smoothing values swept (besides detection.smoothing).")
    seed: int = Field(0, description="Seed of the streams.")


class Evaluation(Strict):
    streaming: Streaming | None = Field(
        default_factory=Streaming,
        description="Streams of the test split (and, for threshold: auto, of the validation "
                    "split): background clips with detect-class events at known times, run "
                    "through the device's per-hop front end, model and detector; scored as "
                    "events (detection rate, false alarms per hour, latency). null: off.")
    cross_validation: CrossValidation | None = Field(
        None, description="Train one model per fold of whole recordings and score each on the "
                          "recordings it never heard (int8, TFLM): the generalisation figure. "
                          "Costs one training per fold.")


# ----------------------------------------------------------------------- detection

Output = Literal["led", "serial"]


class Detection(Strict):
    hop_frames: int = Field(1, ge=1, le=64, description="New feature frames per inference; the "
                                                        "hop is hop_frames * frame_step samples.")
    smoothing: int = Field(3, ge=1, le=64, description="Scores are averaged over this many hops.")
    threshold: Union[Literal["auto"], Annotated[float, Field(gt=0, lt=1)]] = Field(
        0.6, description="Smoothed score at which a class turns on; 'auto': the lowest threshold "
                         "whose false alarms per hour on the validation stream meet "
                         "false_alarms_per_hour (evaluation.streaming).")
    false_alarms_per_hour: float | None = Field(
        None, gt=0, description="The false-alarm budget threshold: auto calibrates to.")
    hysteresis: float = Field(0.1, ge=0, lt=1, description="It turns off below threshold - hysteresis.")
    classes: list[str] = Field(default_factory=list,
                               description="Classes that raise a detection (default: every class "
                                           "whose name does not start with '_' or equal 'background').")
    outputs: list[Output] = Field(["led", "serial"], description="Where detections go.")

    @model_validator(mode="after")
    def _hysteresis_below_threshold(self) -> "Detection":
        if self.threshold == "auto":
            if self.false_alarms_per_hour is None:
                raise ValueError("threshold: auto needs false_alarms_per_hour, the budget it "
                                 "calibrates to")
            return self
        if self.hysteresis >= self.threshold:
            raise ValueError(f"hysteresis ({self.hysteresis}) must be below threshold "
                             f"({self.threshold}) or the detection never turns off")
        return self


# ------------------------------------------------------------------------- targets

class MicPins(Strict):
    data_pin: int | None = Field(None, ge=0, description="Microphone data GPIO (overrides the board).")
    clock_pin: int | None = Field(None, ge=0, description="Microphone clock GPIO (overrides the board).")


class Target(Strict):
    name: str = Field(description="Variant name; a folder of that name holds its firmware.",
                      pattern=r"^[a-z][a-z0-9_]*$")
    board: str = Field(description="Board id, a file boards/<id>.yaml (`micforge boards` lists them).")
    led_pin: int | None = Field(None, ge=0, description="LED GPIO (overrides the board's).")
    mic: MicPins = Field(default_factory=MicPins, description="Microphone pin overrides.")
    arena: Arena | None = Field(None, description="Arena override for this variant.")
    outputs: list[Output] | None = Field(None, description="Output override for this variant.")
    build_type: Literal["Release", "Debug", "MinSizeRel", "RelWithDebInfo"] = Field(
        "Release", description="CMake build type of the firmware.")


# ----------------------------------------------------------------------- the spec

_C_KEYWORDS = set("""auto break case char const continue default do double else enum extern float
for goto if inline int long register restrict return short signed sizeof static struct switch
typedef union unsigned void volatile while bool true false class namespace template new delete
this""".split())


def c_identifier(name: str) -> str:
    """The C enum-constant form of a class name: upper case, non-word runs as '_'."""
    return re.sub(r"\W+", "_", name).strip("_").upper()


class ProjectSpec(Strict):
    name: str = Field(description="Project name; names generated C symbols and folders.",
                      pattern=r"^[a-z][a-z0-9_]*$")
    description: str = Field("", description="One line for humans.")
    audio: Audio = Field(default_factory=Audio, description="Audio stream.")
    features: Features = Field(default_factory=Features, description="Feature front end.")
    classes: list[str] = Field(min_length=2, description="Class names, in output order. Each "
                                                         "must become a unique C identifier.")
    dataset: Dataset = Field(description="Where the recordings are and how they split.")
    augmentation: Augmentation = Field(default_factory=Augmentation, description="Training-time augmentation.")
    model: Model = Field(description="Architecture and its parameters.")
    training: Training = Field(default_factory=Training, description="Training settings.")
    transfer: Transfer | None = Field(None, description="Start from a trained base model.")
    quantization: Quantization = Field(default_factory=Quantization, description="int8 conversion.")
    evaluation: Evaluation = Field(default_factory=Evaluation,
                                   description="Generalisation checks beyond the test split.")
    arena: Arena = Field(default_factory=Arena, description="Tensor arena sizing.")
    detection: Detection = Field(default_factory=Detection, description="Post-processing of scores.")
    targets: list[Target] = Field(min_length=1, description="Firmware variants to generate.")

    @field_validator("classes")
    @classmethod
    def _classes_are_c_names(cls, names: list[str]) -> list[str]:
        seen: dict[str, str] = {}
        for name in names:
            ident = c_identifier(name)
            if not re.fullmatch(r"[A-Z][A-Z0-9_]*", ident) or ident.lower() in _C_KEYWORDS:
                raise ValueError(f"class '{name}' does not make a C identifier ('{ident}'); "
                                 f"start it with a letter and use letters, digits and '_'")
            if ident in seen:
                raise ValueError(f"classes '{seen[ident]}' and '{name}' both become C identifier "
                                 f"'{ident}'; rename one")
            seen[ident] = name
        return names

    @property
    def detect_classes(self) -> list[str]:
        if self.detection.classes:
            return list(self.detection.classes)
        return [c for c in self.classes if not c.startswith("_") and c != "background"]


@dataclass(frozen=True)
class Project:
    """A validated spec and where it came from."""

    spec: ProjectSpec
    path: Path  # the spec file
    positions: Positions

    @property
    def name(self) -> str:
        return self.spec.name

    def resolve(self, relative: str) -> Path:
        """A path written in the spec, made absolute against the spec's folder."""
        return (self.path.parent / relative).resolve()


def _cross_field_problems(spec: ProjectSpec, pos: Positions) -> list[Problem]:
    """Checks that relate two sections, each reported at the value to change."""
    out = []
    for i, cls in enumerate(spec.detection.classes):
        if cls not in spec.classes:
            out.append(pos.problem(("detection", "classes", i),
                                   f"'{cls}' is not one of the classes {spec.classes}"))
    bg = spec.augmentation.background
    for i, cls in enumerate(bg.classes or []):
        if cls not in spec.classes:
            out.append(pos.problem(("augmentation", "background", "classes", i),
                                   f"'{cls}' is not one of the classes {spec.classes}"))
        elif cls in spec.detect_classes:
            out.append(pos.problem(("augmentation", "background", "classes", i),
                                   f"'{cls}' is a detect class; a background must be a class "
                                   f"that does not detect (detect classes: "
                                   f"{', '.join(spec.detect_classes)})"))
    if spec.detection.threshold == "auto" and spec.evaluation.streaming is None:
        out.append(pos.problem(("detection", "threshold"),
                               "threshold: auto calibrates on the validation stream; set "
                               "evaluation.streaming (or give a number)"))
    cv = spec.evaluation.cross_validation
    for i, cls in enumerate(cv.classes if cv else []):
        if cls not in spec.classes:
            out.append(pos.problem(("evaluation", "cross_validation", "classes", i),
                                   f"'{cls}' is not one of the classes {spec.classes}"))
    seen: set[str] = set()
    for i, target in enumerate(spec.targets):
        if target.name in seen:
            out.append(pos.problem(("targets", i, "name"),
                                   f"target name '{target.name}' is used twice; names must be unique"))
        seen.add(target.name)
    out += _name_too_long(pos, ("name",), spec.name, "the build folder, files and C symbols")
    for i, target in enumerate(spec.targets):
        out += _name_too_long(pos, ("targets", i, "name"), target.name, "its firmware folder")
    if spec.features.frame_length > spec.audio.clip_samples:
        out.append(pos.problem(("features", "frame_length"),
                               f"frame_length ({spec.features.frame_length}) is longer than the clip "
                               f"({spec.audio.clip_samples} samples at audio.sample_rate and clip_seconds)"))
    f, nyquist = spec.features, spec.audio.sample_rate / 2
    fmax = f.fmax_hz if f.fmax_hz is not None else nyquist
    if f.kind in ("log_mel", "mfcc") and fmax > nyquist:
        out.append(pos.problem(("features", "fmax_hz"),
                               f"fmax_hz ({fmax:g}) is above half the sample rate ({nyquist:g} Hz); "
                               f"no spectrum bin lies there"))
    elif f.kind in ("log_mel", "mfcc") and f.fmin_hz >= fmax:
        out.append(pos.problem(("features", "fmin_hz"),
                               f"fmin_hz ({f.fmin_hz:g}) must be below fmax_hz ({fmax:g})"))
    if f.kind == "mfcc" and f.mfcc_coefficients > f.mel_bands:
        out.append(pos.problem(("features", "mfcc_coefficients"),
                               f"mfcc_coefficients ({f.mfcc_coefficients}) cannot exceed mel_bands "
                               f"({f.mel_bands}): a DCT of {f.mel_bands} bands has {f.mel_bands} "
                               f"coefficients; lower it or raise mel_bands"))
    return out


_MAX_NAME = 64  # a name becomes a folder, file names and C symbols; file systems stop at 255


def _name_too_long(pos: Positions, loc: tuple, name: str, what: str) -> list[Problem]:
    if len(name) <= _MAX_NAME:
        return []
    return [pos.problem(loc, f"name is {len(name)} characters long; at most {_MAX_NAME} (it names "
                             f"{what})")]


def _transfer_cycle(path: Path, spec: ProjectSpec, pos: Positions) -> list[Problem]:
    """transfer.base naming this spec, or bases whose own transfer.base lead back to it: the
    model would be built from itself. Only each base's transfer.base is read; a missing or
    broken base is reported when its model is needed, and a cycle among the bases alone by
    their own specs."""
    base = spec.transfer.base if spec.transfer else ""
    if not base.endswith((".yaml", ".yml")):
        return []
    start = path.resolve()
    chain, current = [start], (path.parent / base).resolve()
    while current not in chain:
        chain.append(current)
        try:
            data, _ = yamlpos.load(current)
        except SpecError:
            return []
        transfer = data.get("transfer") if isinstance(data, dict) else None
        base = transfer.get("base") if isinstance(transfer, dict) else None
        if not (isinstance(base, str) and base.endswith((".yaml", ".yml"))):
            return []
        current = (current.parent / base).resolve()
    if current != start:
        return []
    if len(chain) == 1:
        return [pos.problem(("transfer", "base"),
                            "transfer.base names this spec itself; a model cannot start from "
                            "itself: name another spec or a trained .keras file")]
    names = " -> ".join(os.path.relpath(p, start.parent) for p in chain + [start])
    return [pos.problem(("transfer", "base"),
                        f"transfer.base leads back to this spec ({names}); a model cannot start "
                        f"from itself: one of these specs must name another base")]


def load_spec(path: str | Path, display: str | None = None, text: str | None = None) -> Project:
    """Read and validate a spec file; raises SpecError with file:line:col on bad input.

    `text`: the spec's content as already read (the build graph's snapshot), parsed instead of
    reading `path` again; `path` still names the file and anchors its relative paths."""
    path = Path(path)
    if text is None:
        data, pos = yamlpos.load(path, display)
    else:
        data, pos = yamlpos.loads(text, display or str(path))
    if not isinstance(data, dict):
        raise SpecError(Problem(pos.path, 1, 1, "a spec must be a YAML mapping of keys to values"))
    try:
        spec = validate(ProjectSpec, data, pos)
    except SpecError as exc:  # a value merged (<<) into several places is wrong once, at its line
        raise SpecError(list(dict.fromkeys(exc.problems))) from None
    problems = _cross_field_problems(spec, pos) + _transfer_cycle(path, spec, pos)
    folder = spec.augmentation.background.folder
    if folder is not None and not (path.parent / folder).is_dir():
        problems.append(pos.problem(("augmentation", "background", "folder"),
                                    f"background folder {folder} is not a folder (paths are "
                                    f"relative to the spec file)"))
    if problems:
        raise SpecError(problems)
    return Project(spec=spec, path=path.resolve(), positions=pos)
