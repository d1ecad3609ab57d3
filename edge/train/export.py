"""Full-integer TFLite export: int8 weights, activations, input and output."""

from __future__ import annotations

from collections.abc import Iterator

import keras
import numpy as np
import tensorflow as tf

from edge.train.model import build
from edge.train.spec import CANON_H, CANON_W


def to_tflite(trained: keras.Model, representative: list[np.ndarray]) -> tuple[bytes, keras.Model]:
    """Rebuild at the fixed canonical size, copy the weights and quantize with real crops."""
    fixed = build(CANON_H, CANON_W)
    fixed.set_weights(trained.get_weights())

    def samples() -> Iterator[list[np.ndarray]]:
        for crop in representative:
            yield [crop[None].astype(np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(fixed)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = samples
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return conv.convert(), fixed
