"""Load the TFLite model, check it against its metadata, and run it on canonical crops."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from importlib import metadata as pkg_metadata
from pathlib import Path
from typing import Any

import numpy as np

from edge.config.model import ModelConfig
from edge.contract import DEFECT_KINDS, ModelInfo

log = logging.getLogger(__name__)

class ModelError(RuntimeError):
    """The model cannot be used: missing, corrupt, or not the one its metadata describes."""


@dataclass(frozen=True)
class ModelMeta:
    name: str
    version: str
    sha256: str
    labels: tuple[str, ...]
    input_shape: tuple[int, int, int, int]
    output_grid: tuple[int, int]
    stride: int
    margin: float
    thresholds: dict[str, float]
    macs: int

    @property
    def canonical_size(self) -> tuple[int, int]:
        """(width, height) of the crop the model takes."""
        return self.input_shape[2], self.input_shape[1]


def load_meta(path: Path) -> ModelMeta:
    try:
        raw: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(f"model metadata {path} is missing; it must lie beside the .tflite file") from None
    except (OSError, ValueError) as e:
        raise ModelError(f"model metadata {path} is unreadable: {e}") from None
    try:
        meta = ModelMeta(
            name=str(raw["name"]),
            version=str(raw["version"]),
            sha256=str(raw["sha256"]).lower(),
            labels=tuple(raw["labels"]),
            input_shape=tuple(int(v) for v in raw["input_shape"]),  # type: ignore[arg-type]
            output_grid=tuple(int(v) for v in raw["output_grid"]),  # type: ignore[arg-type]
            stride=int(raw["stride"]),
            margin=float(raw["canonical_margin"]),
            thresholds={k: float(v) for k, v in raw["thresholds"].items()},
            macs=int(raw.get("macs", 0)),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise ModelError(f"model metadata {path} lacks or mistypes a field: {e}") from None
    if meta.labels[0] != "none" or set(meta.labels[1:]) != set(DEFECT_KINDS):
        raise ModelError(f"model metadata {path}: labels {list(meta.labels)} are not none + {list(DEFECT_KINDS)}")
    if len(meta.input_shape) != 4 or meta.input_shape[0] != 1 or meta.input_shape[3] != 3:
        raise ModelError(f"model metadata {path}: input_shape {list(meta.input_shape)} is not [1, H, W, 3]")
    return meta


def _interpreter_class(choice: str) -> tuple[type, str]:
    # ai_edge_litert first: on int8 models its XNNPACK build ran ~7x faster than tflite_runtime.
    order = {"auto": ("litert", "tflite_runtime"), "litert": ("litert",), "tflite_runtime": ("tflite_runtime",)}[choice]
    errors = []
    for name in order:
        try:
            if name == "litert":
                from ai_edge_litert.interpreter import Interpreter

                return Interpreter, f"ai-edge-litert {pkg_metadata.version('ai-edge-litert')}"
            from tflite_runtime.interpreter import Interpreter  # type: ignore[no-redef]

            return Interpreter, f"tflite-runtime {pkg_metadata.version('tflite-runtime')}"
        except ImportError as e:
            errors.append(f"{name}: {e}")
    raise ModelError("no TFLite runtime could be imported (" + "; ".join(errors) + ")")


class Network:
    """One interpreter over a model file's bytes: a uint8 BGR crop in, class probabilities out."""

    def __init__(self, blob: bytes, threads: int, runtime: str = "auto", name: str = "model") -> None:
        cls, self.runtime_name = _interpreter_class(runtime)
        try:
            self._interp = cls(model_content=blob, num_threads=threads)
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise ModelError(f"{name} cannot be loaded by {self.runtime_name}: {e}") from None
        self.input = self._interp.get_input_details()[0]
        self.output = self._interp.get_output_details()[0]
        scale, zero = self.input["quantization"]
        # int8 = pixel - 128 lets preprocessing be one XOR instead of float arithmetic.
        self._fast_input = abs(scale - 1.0) < 1e-6 and zero == -128
        self._in_q = (float(scale), int(zero))
        self._out_q = tuple(float(v) for v in self.output["quantization"])

    def run(self, crop: np.ndarray) -> np.ndarray:
        """Probabilities (grid_h, grid_w, labels) for one uint8 BGR crop of the model's input size."""
        if self._fast_input:
            # XORed straight into the interpreter's input buffer: no int8 copy of the crop to hand
            # to set_tensor and copy again. The view must be gone before invoke.
            buffer = self._interp.tensor(self.input["index"])()
            np.bitwise_xor(crop, np.uint8(0x80), out=buffer[0].view(np.uint8))
            del buffer
        else:
            scale, zero = self._in_q
            q = np.clip(np.round(crop / scale + zero), -128, 127).astype(np.int8)
            self._interp.set_tensor(self.input["index"], q[None])
        self._interp.invoke()
        raw = self._interp.get_tensor(self.output["index"])[0]
        scale, zero = self._out_q
        return (raw.astype(np.float32) - zero) * scale


def read_model(path: Path) -> tuple[bytes, ModelMeta]:
    """The model file's bytes and its metadata, checked against each other by sha256."""
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"model file {path} is missing (set [model].path)") from None
    except OSError as e:
        raise ModelError(f"model file {path} is unreadable: {e}") from None
    meta = load_meta(path.with_suffix(".json"))
    digest = hashlib.sha256(blob).hexdigest()
    if digest != meta.sha256:
        raise ModelError(
            f"model file {path} has sha256 {digest[:12]}..., its metadata says {meta.sha256[:12]}...: "
            "the file is corrupt or does not belong to this metadata"
        )
    return blob, meta


class Runtime:
    """The booth's model, verified against its metadata at start-up; ``run`` is its network's."""

    def __init__(self, cfg: ModelConfig) -> None:
        path = Path(cfg.path)
        blob, self.meta = read_model(path)
        self.network = Network(blob, cfg.threads, cfg.runtime, f"model file {path}")
        self._check(path)
        self.thresholds = {**self.meta.thresholds, **{k: float(v) for k, v in cfg.thresholds.items()}}
        self.info = ModelInfo(
            name=self.meta.name, version=self.meta.version, sha256=self.meta.sha256, runtime=self.network.runtime_name
        )
        log.info(
            "model %s %s loaded with %s, %d threads",
            self.meta.name, self.meta.version, self.network.runtime_name, cfg.threads,
        )  # fmt: skip

    def _check(self, path: Path) -> None:
        inp, outp = self.network.input, self.network.output
        shape = tuple(int(v) for v in inp["shape"])
        if shape != self.meta.input_shape:
            raise ModelError(
                f"model {path}: input shape {list(shape)} differs from metadata {list(self.meta.input_shape)}"
            )
        if inp["dtype"] != np.int8 or outp["dtype"] != np.int8:
            raise ModelError(f"model {path}: input/output must be int8 (fully quantized)")
        out = tuple(int(v) for v in outp["shape"])
        want = (1, *self.meta.output_grid, len(self.meta.labels))
        if out != want:
            raise ModelError(f"model {path}: output shape {list(out)} differs from metadata {list(want)}")

    def run(self, crop: np.ndarray) -> np.ndarray:
        return self.network.run(crop)
