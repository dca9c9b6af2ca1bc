"""The model zoo: a Keras model for a spec, chosen by `model.architecture`.

`build_model(spec)` takes a validated ProjectSpec and returns an uncompiled
keras.Model whose input is float [num_frames, num_bins, 1] (the int8 features
divided by 128, see features.INPUT_SCALE) and whose output is a softmax over
spec.classes, in that order. Binary tasks also get a 2-way softmax (not one
sigmoid unit): the firmware then reads one score per class for every task.

Every layer converts to a TFLM builtin int8 kernel (CONV_2D, DEPTHWISE_CONV_2D,
MAX_POOL_2D, AVERAGE_POOL_2D, RESHAPE, FULLY_CONNECTED, SOFTMAX); batch
normalisation folds into the convolutions on conversion. There are no resize
or normalisation layers: the device feeds the features unchanged.

  guide_cnn    the RP2040 guide's CNN: conv (filters, kernel, stride; relu),
               2x2 max-pool, flatten, dropout, dense.
  ds_cnn       depthwise-separable keyword CNN (Hello Edge): a first conv, then
               `blocks` x (3x3 depthwise, 1x1 pointwise), each with batch norm
               and relu, average-pooled over the whole map, dropout, dense.
  compact_cnn  the RP2040 latency model: strided (2x2) convs with relu (the first
               one's stride `first_stride`), one 2x2 max-pool, flatten, dropout,
               dense; well under 1 M MACs.
"""

from __future__ import annotations

import keras
from keras import layers

from .features import design
from .spec import CompactCnn, DsCnn, GuideCnn, ProjectSpec

# Keras' default 0.99 lags on small data sets (a few dozen steps per epoch):
# the moving statistics used for validation and conversion would trail the weights.
BN_MOMENTUM = 0.9


def input_shape(spec: ProjectSpec) -> tuple[int, int, int]:
    """The model input (frames, bins, channels) the features of `spec` fill."""
    fe = design(spec)
    return (fe.num_frames, fe.num_bins, 1)


def _guide_cnn(m: GuideCnn, inputs, n_classes: int):
    x = layers.Conv2D(m.filters, m.kernel, strides=m.stride, activation="relu", name="conv")(inputs)
    x = layers.MaxPooling2D(2, name="pool")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dropout(m.dropout, name="dropout")(x)
    return layers.Dense(n_classes, activation="softmax", name="head")(x)


def _conv_bn_relu(x, name: str, **conv):
    x = layers.Conv2D(use_bias=False, padding="same", name=name, **conv)(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=name + "_bn")(x)
    return layers.ReLU(name=name + "_relu")(x)


def _ds_cnn(m: DsCnn, inputs, n_classes: int):
    x = _conv_bn_relu(inputs, "conv0", filters=m.filters, kernel_size=m.first_kernel,
                      strides=m.first_stride)
    for i in range(1, m.blocks + 1):
        x = layers.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"dw{i}")(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"dw{i}_bn")(x)
        x = layers.ReLU(name=f"dw{i}_relu")(x)
        x = _conv_bn_relu(x, f"pw{i}", filters=m.filters, kernel_size=1)
    # A pool over the whole map (AVERAGE_POOL_2D) rather than GlobalAveragePooling2D,
    # which converts to MEAN: both run in TFLM, the pool is the cheaper kernel.
    x = layers.AveragePooling2D(pool_size=tuple(x.shape[1:3]), name="pool")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dropout(m.dropout, name="dropout")(x)
    return layers.Dense(n_classes, activation="softmax", name="head")(x)


def _compact_cnn(m: CompactCnn, inputs, n_classes: int):
    x = inputs
    for i, filters in enumerate(m.filters):
        stride = m.first_stride if i == 0 else 2
        x = layers.Conv2D(filters, m.kernel, strides=stride, padding="same", activation="relu",
                          name=f"conv{i}")(x)
    x = layers.MaxPooling2D(2, name="pool")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dropout(m.dropout, name="dropout")(x)
    return layers.Dense(n_classes, activation="softmax", name="head")(x)


_BUILDERS = {"guide_cnn": _guide_cnn, "ds_cnn": _ds_cnn, "compact_cnn": _compact_cnn}


def build_model(spec: ProjectSpec) -> keras.Model:
    """An uncompiled Keras model for `spec` (weights from Keras' global seed)."""
    inputs = keras.Input(shape=input_shape(spec), name="features")
    outputs = _BUILDERS[spec.model.architecture](spec.model, inputs, len(spec.classes))
    return keras.Model(inputs, outputs, name=spec.name)
