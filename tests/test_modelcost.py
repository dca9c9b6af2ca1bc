"""MACs and the arena's lower bound from the spec alone, held to the Keras models of the zoo."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from generator import modelcost
from generator.spec import load_spec

REPO = Path(__file__).resolve().parent.parent


def _keras_macs(model) -> int:
    """Weight MACs of a built Keras model, counted the way tflm_ops counts converted ops."""
    import keras

    total = 0
    for layer in model.layers:
        out = layer.output.shape
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            total += out[1] * out[2] * out[3] * layer.kernel_size[0] * layer.kernel_size[1]
        elif isinstance(layer, keras.layers.Conv2D):
            total += (out[1] * out[2] * out[3] * layer.kernel_size[0] * layer.kernel_size[1]
                      * layer.input.shape[3])
        elif isinstance(layer, keras.layers.Dense):
            total += layer.input.shape[-1] * layer.units
    return total


def _keras_weights(model) -> tuple[int, int]:
    """(kernel values, output channels) of the layers that compute: what the converted model
    stores as int8 weights and int32 biases (batch norm folds into a bias per channel)."""
    import keras

    weights = channels = 0
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D,
                              keras.layers.Dense)):
            weights += int(math.prod(layer.kernel.shape))
            channels += int(layer.output.shape[-1])
    return weights, channels


MODELS = ["{architecture: guide_cnn}", "{architecture: guide_cnn, filters: 4, kernel: 5, stride: 3}",
          "{architecture: compact_cnn}", "{architecture: compact_cnn, filters: [8, 12], first_stride: 4}",
          "{architecture: compact_cnn, filters: [4, 8, 16], kernel: 5}",
          "{architecture: ds_cnn, filters: 24, blocks: 3, first_kernel: [5, 3], first_stride: [2, 4]}",
          "{architecture: ds_cnn, filters: 8, blocks: 1}"]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("features", ["{}", "{frame_step: 256, mel_bands: 20}"])
def test_macs_equal_the_zoo_models(tmp_path, model, features):
    from generator.zoo import build_model

    path = tmp_path / "s.yaml"
    path.write_text(f"name: t\nclasses: [a, b, c]\nfeatures: {features}\ndataset: {{layout: synthetic}}\n"
                    f"model: {model}\ntargets: [{{name: p, board: teensy41}}]\n")
    spec = load_spec(path).spec
    model = build_model(spec)
    assert modelcost.macs(spec) == _keras_macs(model)
    counted = modelcost.layers(spec)
    assert (sum(x.weights for x in counted), sum(x.biases for x in counted)) == \
        _keras_weights(model)


@pytest.mark.parametrize("name,macs,measured,model_bytes", [("fire_alarm", 18_528, 3664, 5_184),
                                                            ("keywords", 678_672, 16352, 15_808)])
def test_the_examples(name, macs, measured, model_bytes):
    spec = load_spec(REPO / "projects" / f"{name}.yaml").spec
    assert modelcost.macs(spec) == macs  # the analysis of their converted models says the same
    assert 0 < modelcost.arena_lower_bound(spec) < measured  # what TFLM measured for them
    assert 0 < modelcost.model_bytes_lower_bound(spec) < model_bytes  # their .tflite files
