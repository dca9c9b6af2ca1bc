"""Model stages on small generated feature arrays: zoo, training, transfer, int8, analysis, C.

Every test trains or converts a real Keras model and runs the real LiteRT
(ai_edge_litert) and TFLM (tflite_micro) interpreters; the arrays are small and separable so a few
epochs suffice. The real-data end-to-end run is in test_model_e2e.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from generator import analyze as A
from generator import tflm_ops
from generator.convert import io_quantization, to_tflite
from generator.errors import SpecError
from generator.evaluate import evaluate, format_evaluation
from generator.features import INPUT_SCALE, INPUT_ZERO_POINT
from generator.model_c import model_source
from generator.spec import load_spec
from generator.train import train
from generator.zoo import build_model

FRAMES, BINS = 31, 32  # 16 kHz, 1 s, frame_step 512, 32 mel bands (as fire_alarm)


def write_spec(folder: Path, name: str = "t", classes=("a", "b"), model="{architecture: compact_cnn}",
               extra: str = "", frame_step: int = 512) -> Path:
    """A spec with model on line 6; `extra` sections follow from line 7."""
    folder.mkdir(parents=True, exist_ok=True)
    text = (f"name: {name}\n"
            f"classes: [{', '.join(classes)}]\n"
            f"features: {{frame_length: 512, frame_step: {frame_step}, fft_size: 512, mel_bands: {BINS}}}\n"
            "dataset: {layout: synthetic}\n"
            "training: {epochs: 4, batch_size: 16, patience: 3, seed: 7}\n"
            f"model: {model}\n"
            f"{extra}"
            "targets:\n  - {name: pico, board: rpi_pico}\n")
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


def make_features(path: Path, n_classes: int = 2, per_class: int = 48, seed: int = 0,
                  frames: int = FRAMES) -> Path:
    """A separable int8 feature set: class k is loud in its own band of bins, over noise."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in (("train", per_class), ("validation", per_class // 4), ("test", per_class // 2)):
        xs, ys = [], []
        for k in range(n_classes):
            x = rng.integers(-128, -60, size=(n, frames, BINS))
            band = slice(k * BINS // n_classes, (k + 1) * BINS // n_classes)
            x[:, :, band] += rng.integers(90, 180, size=(n, 1, 1))
            xs.append(np.clip(x, -128, 127).astype(np.int8))
            ys.append(np.full(n, k, np.int64))
        arrays[f"x_{split}"], arrays[f"y_{split}"] = np.concatenate(xs), np.concatenate(ys)
    np.savez(path, **arrays)
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One small compact_cnn trained, converted, analysed and evaluated."""
    tmp = tmp_path_factory.mktemp("built")
    project = load_spec(write_spec(tmp))
    npz = make_features(tmp / "features.npz")
    out = tmp / "build" / "t"
    train(project, npz, out / "model" / "model.keras", out / "model" / "history.json")
    to_tflite(project, out / "model" / "model.keras", npz, out / "tflite" / "model.tflite")
    analysis = A.analyze(project, out / "tflite" / "model.tflite", out / "analysis.json")
    evaluation = evaluate(project, out / "model" / "model.keras", out / "tflite" / "model.tflite",
                          npz, out / "evaluation.json")
    return dict(project=project, npz=npz, out=out, analysis=analysis, evaluation=evaluation,
                tflite=(out / "tflite" / "model.tflite").read_bytes())


def test_zoo_models_take_the_feature_shape_and_output_every_class(tmp_path):
    for model, n in (("{architecture: guide_cnn}", 2), ("{architecture: ds_cnn, filters: 8, blocks: 2}", 3),
                     ("{architecture: compact_cnn, filters: [4, 8]}", 6)):
        classes = [f"c{i}" for i in range(n)]
        spec = load_spec(write_spec(tmp_path, classes=classes, model=model, frame_step=256)).spec
        m = build_model(spec)
        assert m.input_shape == (None, 61, BINS, 1)
        assert m.output_shape == (None, n)


def test_every_architecture_converts_to_ops_tflm_runs(tmp_path):
    """Untrained models of each architecture: int8 only, the input contract, TFLM allocates."""
    expected = {"guide_cnn": {"CONV_2D", "MAX_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"},
                "ds_cnn": {"CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "FULLY_CONNECTED",
                           "SOFTMAX"},  # the 1x1 map's flatten folds into FULLY_CONNECTED
                "compact_cnn": {"CONV_2D", "MAX_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"}}
    npz = make_features(tmp_path / "f.npz", per_class=8)
    for arch, ops in expected.items():
        extra = ", filters: 8, blocks: 1" if arch == "ds_cnn" else ""
        project = load_spec(write_spec(tmp_path / arch, model=f"{{architecture: {arch}{extra}}}"))
        import keras
        keras.utils.set_random_seed(0)
        keras_path = tmp_path / arch / "m.keras"
        build_model(project.spec).save(keras_path)
        to_tflite(project, keras_path, npz, tmp_path / arch / "m.tflite")
        d = A.analyze(project, tmp_path / arch / "m.tflite", tmp_path / arch / "a.json")
        assert {o["op"] for o in d["ops"]} == ops, arch
        assert d["input"]["scale"] == INPUT_SCALE and d["input"]["zero_point"] == INPUT_ZERO_POINT
        if arch == "ds_cnn":  # batch norm folded into the convolutions: no separate MUL/ADD
            assert not {"MUL", "ADD"} & {o["op"] for o in d["ops"]}


def test_guide_cnn_layers(tmp_path):
    # 8 filters 8x8/2 'valid' on 31x32 -> 12x13x8, 2x2 max-pool -> 6x6x8 = 288 inputs to the dense.
    spec = load_spec(write_spec(tmp_path, model="{architecture: guide_cnn}")).spec
    m = build_model(spec)
    assert m.get_layer("conv").output.shape[1:] == (12, 13, 8)
    assert m.get_layer("conv").count_params() == 8 * 64 + 8
    assert m.get_layer("head").count_params() == 288 * 2 + 2


@pytest.mark.slow
def test_training_learns_and_the_three_runtimes_agree(built):
    ev = built["evaluation"]
    for runtime in ("float", "int8", "tflm"):
        assert ev["runtimes"][runtime]["accuracy"] >= 0.9, (runtime, ev["runtimes"][runtime])
    assert ev["int8_tflm_mismatches"] == 0
    assert ev["runtimes"]["int8"]["confusion"] == ev["runtimes"]["tflm"]["confusion"]
    cm = np.array(ev["runtimes"]["float"]["confusion"])
    assert cm.sum() == ev["test_clips"] == 48
    assert "identical on every test clip" in format_evaluation(ev)


@pytest.mark.slow
def test_tflm_outputs_equal_tflite_int8_outputs_clip_by_clip(built):
    from generator.evaluate import run_tflite, run_tflm
    with np.load(built["npz"]) as data:
        q = data["x_test"]
    a, b = run_tflite(built["tflite"], q), run_tflm(built["tflite"], q)
    assert a.dtype == np.int8 and a.shape == (len(q), 2)
    assert np.array_equal(a, b)


@pytest.mark.parametrize("worst, changed, loud", [(1, 0, False), (2, 0, False), (3, 0, True),
                                                   (1, 1, True)])
def test_tflm_rounding_is_stated_calmly_and_a_divergence_loudly(worst, changed, loud):
    ev = {"classes": ["a", "b"], "test_clips": 3, "int8_drop_points": 0.0,
          "int8_tflm_mismatches": 1, "int8_tflm_mismatch_clips": [2], "int8_tflm_max_abs_diff": worst,
          "int8_tflm_prediction_differences": changed,
          "runtimes": {r: {"accuracy": 1.0, "confusion": [[1, 0], [0, 2]],
                           "per_class": {"a": {"precision": 1.0, "recall": 1.0},
                                         "b": {"precision": None, "recall": 1.0}}}
                       for r in ("float", "int8", "tflm")}}
    text = format_evaluation(ev)
    assert f"differ on 1 of 3 clips, by at most {worst} LSB, {changed} predicted" in text
    # the console shows a stage's WARNING lines (generator.console): only a real divergence
    assert ("WARNING: TFLM and int8 TFLite outputs differ" in text) == loud
    assert ("expected kernel rounding" in text) == (not loud)


@pytest.mark.slow
def test_history_records_epochs_and_best(built):
    import json
    h = json.loads((built["out"] / "model" / "history.json").read_text())
    phase = h["phases"]["train"]
    assert 1 <= phase["best_epoch"] <= phase["epochs_run"] <= 4
    assert len(phase["metrics"]["val_loss"]) == phase["epochs_run"]
    assert h["samples"] == {"train": 96, "validation": 24, "test": 48}


@pytest.mark.slow
def test_input_tensor_takes_int8_features_unchanged(built):
    q = io_quantization(built["tflite"])
    assert q["input"] == {"dtype": "int8", "shape": [1, FRAMES, BINS, 1], "scale": 1 / 128,
                          "zero_point": 0}
    assert q["output"]["dtype"] == "int8" and q["output"]["shape"] == [1, 2]


@pytest.mark.slow
def test_op_list_equals_the_flatbuffers(built):
    from ai_edge_litert.interpreter import Interpreter
    interp = Interpreter(model_content=built["tflite"])
    ops = [d["op_name"] for d in interp._get_ops_details()]
    layers = built["analysis"]["layers"]
    assert [x["op"] for x in layers] == ops
    assert built["analysis"]["resolver"] == sorted({tflm_ops.op(o).resolver for o in ops})
    assert built["analysis"]["model_bytes"] == len(built["tflite"])


@pytest.mark.slow
def test_an_op_outside_the_op_table_is_refused(built, tmp_path, monkeypatch):
    """An op TFLM runs but micforge has no resolver/kernel/MAC entry for is an error, not 0 MACs."""
    monkeypatch.delitem(tflm_ops.OPS, "SOFTMAX")
    tflite = tmp_path / "m.tflite"
    tflite.write_bytes(built["tflite"])
    with pytest.raises(SpecError, match=r"op SOFTMAX is not in micforge's TFLM op table "
                                        r"\(generator/tflm_ops.py"):
        A.analyze(built["project"], tflite, tmp_path / "a.json")


@pytest.mark.slow
def test_macs_and_params_match_the_keras_model(built):
    import keras
    d = built["analysis"]
    model = keras.saving.load_model(built["out"] / "model" / "model.keras", compile=False)
    assert d["params"] == model.count_params()
    # compact_cnn [8, 16], 3x3 'same' stride 2 on 31x32: 16x16x8 then 8x8x16, pool 4x4x16, dense 2.
    assert [x["macs"] for x in d["layers"] if x["macs"]] == [16 * 16 * 8 * 9, 8 * 8 * 16 * 9 * 8, 256 * 2]
    assert d["macs"] == sum(x["macs"] for x in d["layers"])


@pytest.mark.slow
def test_arena_is_the_smallest_that_runs(built):
    d = built["analysis"]
    measured = d["arena"]["measured_bytes"]
    shape = d["input"]["shape"]
    assert measured % A.ARENA_ALIGN == 0
    assert A.runs_with_arena(built["tflite"], measured, shape)[0]
    ok, log = A.runs_with_arena(built["tflite"], measured - A.ARENA_ALIGN, shape)
    assert not ok and "allocate" in log
    margin = built["project"].spec.arena.margin
    assert d["arena_bytes"] == d["arena"]["bytes"] == -(-(measured + margin) // 16) * 16


@pytest.mark.slow
def test_numeric_arena_too_small_errors_at_its_spec_line(built, tmp_path):
    path = write_spec(tmp_path, extra="arena:\n  size: 1024\n")
    with pytest.raises(SpecError) as err:
        A.analyze(load_spec(path), built["out"] / "tflite" / "model.tflite", tmp_path / "a.json")
    assert re.search(rf"{re.escape(str(path))}:8:9: arena of 1024 bytes is too small: the model "
                     rf"needs \d+", str(err.value)), str(err.value)


@pytest.mark.slow
def test_numeric_arena_large_enough_is_used(built, tmp_path):
    path = write_spec(tmp_path, extra="arena:\n  size: 65536\n")
    d = A.analyze(load_spec(path), built["out"] / "tflite" / "model.tflite", tmp_path / "a.json")
    assert d["arena_bytes"] == 65536


def test_an_op_tflm_cannot_run_is_refused(tmp_path):
    """GELU converts to an int8 TFLite builtin that the TFLM runtime does not register."""
    import keras
    project = load_spec(write_spec(tmp_path))
    keras.utils.set_random_seed(0)
    inputs = keras.Input((FRAMES, BINS, 1))
    x = keras.layers.Conv2D(4, 3, strides=2)(inputs)
    x = keras.layers.Activation("gelu")(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(2, activation="softmax")(x)
    keras.Model(inputs, outputs).save(tmp_path / "m.keras")
    to_tflite(project, tmp_path / "m.keras", make_features(tmp_path / "f.npz", per_class=8),
              tmp_path / "m.tflite")
    assert "GELU" in {x["op"] for x in A.read_layers((tmp_path / "m.tflite").read_bytes())[0]}
    with pytest.raises(SpecError) as err:
        A.analyze(project, tmp_path / "m.tflite", tmp_path / "a.json")
    assert re.search(r":6:23: the TFLM runtime cannot run this model \(ops .*GELU", str(err.value)), \
        str(err.value)


def test_training_is_deterministic(tmp_path):
    import keras
    project = load_spec(write_spec(tmp_path, extra=""))
    npz = make_features(tmp_path / "f.npz", per_class=16)
    weights = []
    for run in ("one", "two"):
        path = tmp_path / run / "model.keras"
        train(project, npz, path, tmp_path / run / "history.json")
        weights.append(keras.saving.load_model(path, compile=False).get_weights())
    assert all(np.array_equal(a, b) for a, b in zip(*weights))
    assert (tmp_path / "one" / "history.json").read_bytes() == (tmp_path / "two" / "history.json").read_bytes()


def test_transfer_replaces_the_head_and_keeps_the_body(tmp_path):
    import keras
    base = load_spec(write_spec(tmp_path, name="base", classes=("x", "y", "z")))
    build = tmp_path / "build"
    train(base, make_features(tmp_path / "base.npz", n_classes=3, seed=1),
          build / "base" / "model" / "model.keras", build / "base" / "model" / "history.json")
    path = write_spec(tmp_path, name="child",
                      extra="transfer: {base: base.yaml, head_epochs: 3, finetune_epochs: 0}\n")
    child = load_spec(path)
    npz = make_features(tmp_path / "child.npz", seed=2)
    out = build / "child" / "model" / "model.keras"
    train(child, npz, out, build / "child" / "model" / "history.json")
    base_model = keras.saving.load_model(build / "base" / "model" / "model.keras", compile=False)
    model = keras.saving.load_model(out, compile=False)
    assert model.output_shape == (None, 2)
    body = model.get_layer("body")
    # Head-only training leaves every body weight as the base trained it.
    for layer in body.layers:
        if layer.weights:
            src = base_model.get_layer(layer.name)
            assert all(np.array_equal(a, b) for a, b in zip(layer.get_weights(), src.get_weights()))
    # Fine-tuning changes the body.
    path.write_text(path.read_text().replace("finetune_epochs: 0", "finetune_epochs: 2"))
    train(load_spec(path), npz, out, build / "child" / "model" / "history.json")
    tuned = keras.saving.load_model(out, compile=False).get_layer("body").get_layer("conv0")
    assert not np.array_equal(tuned.get_weights()[0], base_model.get_layer("conv0").get_weights()[0])
    import json
    h = json.loads((build / "child" / "model" / "history.json").read_text())
    assert set(h["phases"]) == {"head", "finetune"}


def test_transfer_errors_name_the_base_line(tmp_path):
    base = load_spec(write_spec(tmp_path, name="base", frame_step=256))
    build = tmp_path / "build"
    import keras
    build_model(base.spec).save((build / "base" / "model").mkdir(parents=True) or
                                build / "base" / "model" / "model.keras")
    path = write_spec(tmp_path, name="child", extra="transfer: {base: base.yaml}\n")
    npz = make_features(tmp_path / "f.npz", per_class=8)
    with pytest.raises(SpecError) as err:
        train(load_spec(path), npz, build / "child" / "model" / "model.keras", tmp_path / "h.json")
    assert f"{path}:7:18: the base model takes input (61, 32, 1)" in str(err.value)
    path2 = write_spec(tmp_path / "other", name="child", extra="transfer: {base: missing.keras}\n")
    with pytest.raises(SpecError, match=r":7:18: base model .*missing.keras does not exist"):
        train(load_spec(path2), npz, build / "child" / "model" / "model.keras", tmp_path / "h.json")


@pytest.mark.slow
def test_model_c_array_holds_the_flatbuffer(built):
    project = built["project"]
    header, source = model_source(project, built["tflite"])
    assert "extern const uint8_t t_model_data[];" in header
    assert f"#define T_MODEL_DATA_LEN ({len(built['tflite'])}U)" in header
    assert f"alignas(16) const uint8_t t_model_data[{len(built['tflite'])}] = {{" in source
    body = source.split("= {", 1)[1].split("};", 1)[0]
    assert bytes(int(v, 16) for v in re.findall(r"0x[0-9a-f]{2}", body)) == built["tflite"]
    assert model_source(project, built["tflite"]) == (header, source)  # deterministic


@pytest.mark.slow
def test_model_c_compiles_and_links(built, tmp_path):
    """The header and source compile with the host g++ and the array reads back aligned."""
    import subprocess
    header, source = model_source(built["project"], built["tflite"])
    (tmp_path / "model_data.h").write_text(header)
    (tmp_path / "model_data.cc").write_text(source)
    (tmp_path / "main.cc").write_text(
        '#include <cstdio>\n#include <cstdint>\n#include "model_data.h"\n'
        "int main() { unsigned long sum = 0; for (uint32_t i = 0; i < t_model_data_len; ++i) "
        "sum += t_model_data[i];\n std::printf(\"%lu %u %d\\n\", sum, (unsigned)T_MODEL_DATA_LEN, "
        "(int)((uintptr_t)t_model_data % 16)); }\n")
    exe = tmp_path / "main"
    subprocess.run(["g++", "-std=c++17", "-Wall", "-Werror", "-o", str(exe), str(tmp_path / "main.cc"),
                    str(tmp_path / "model_data.cc")], check=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.split()
    assert out == [str(sum(built["tflite"])), str(len(built["tflite"])), "0"]
