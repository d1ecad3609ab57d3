"""The network: a small MobileNet-style fully convolutional net, one softmax per 16x16 cell.

Early layers keep full resolution so a scratch one or two pixels wide still excites them; dilated
blocks at stride 16 see about 10 mm around each cell, enough to tell a line from a round spot.
"""

from __future__ import annotations

import keras
from keras import layers

from edge.train.spec import LABELS


def _bn_relu(x: keras.KerasTensor) -> keras.KerasTensor:
    # momentum 0.9: the default 0.99 does not settle in a run of a few thousand steps
    return layers.ReLU(6.0)(layers.BatchNormalization(momentum=0.9)(x))


def _block(x: keras.KerasTensor, out: int, stride: int = 1, dilation: int = 1) -> keras.KerasTensor:
    x = layers.DepthwiseConv2D(3, strides=stride, dilation_rate=dilation, padding="same", use_bias=False)(x)
    x = _bn_relu(x)
    return _bn_relu(layers.Conv2D(out, 1, use_bias=False)(x))


def build(height: int | None = None, width: int | None = None) -> keras.Model:
    inp = keras.Input((height, width, 3), name="image")
    x = layers.Rescaling(1 / 255)(inp)  # the int8 input is then simply pixel - 128
    x = _bn_relu(layers.Conv2D(24, 3, strides=2, padding="same", use_bias=False)(x))
    x = _block(x, 32, 2)
    x = _block(x, 32)
    x = _block(x, 64, 2)
    x = _block(x, 64)
    x = _block(x, 96, 2)
    x = _block(x, 96, dilation=2)
    x = _block(x, 96, dilation=4)
    x = layers.Conv2D(len(LABELS), 1)(x)
    return keras.Model(inp, layers.Softmax(name="probs")(x), name="booth_defects")


def count_macs(model: keras.Model) -> int:
    """Multiply-accumulates of one inference at the model's fixed input size."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, layers.DepthwiseConv2D):
            _, h, w, c = layer.output.shape
            total += h * w * c * layer.kernel_size[0] * layer.kernel_size[1]
        elif isinstance(layer, layers.Conv2D):
            _, h, w, c = layer.output.shape
            cin = layer.input.shape[-1]
            total += h * w * c * cin * layer.kernel_size[0] * layer.kernel_size[1]
    return int(total)
