"""The committed model through the real interpreter, and start-up refusals of a bad model."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge.config.model import DEFAULT_MODEL, ModelConfig
from edge.grade.runtime import ModelError, Runtime

META = DEFAULT_MODEL.with_suffix(".json")


def _copy(tmp_path: Path) -> tuple[Path, Path]:
    model = tmp_path / "m.tflite"
    shutil.copy(DEFAULT_MODEL, model)
    shutil.copy(META, tmp_path / "m.json")
    return model, tmp_path / "m.json"


def _edit_meta(path: Path, **changes: object) -> None:
    meta = json.loads(path.read_text())
    meta.update(changes)
    path.write_text(json.dumps(meta))


def test_committed_model_matches_its_metadata() -> None:
    meta = json.loads(META.read_text())
    assert hashlib.sha256(DEFAULT_MODEL.read_bytes()).hexdigest() == meta["sha256"]
    assert meta["labels"] == ["none", "scratch", "crack", "chip", "dirt"]
    assert meta["macs"] < 1_500_000_000  # a Pi 4 budget
    rt = Runtime(ModelConfig(threads=2))
    assert rt.info.sha256 == meta["sha256"]
    assert rt.info.runtime.startswith(("ai-edge-litert", "tflite-runtime"))


def test_run_gives_probabilities_on_the_output_grid() -> None:
    rt = Runtime(ModelConfig(threads=2))
    w, h = rt.meta.canonical_size
    probs = rt.run(np.full((h, w, 3), 30, np.uint8))
    assert probs.shape == (*rt.meta.output_grid, len(rt.meta.labels))
    assert np.allclose(probs.sum(axis=-1), 1.0, atol=0.05)
    # A uniform dark crop is clean glass: "none" wins everywhere.
    assert (probs.argmax(axis=-1) == 0).all()


def test_missing_model_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="missing"):
        Runtime(ModelConfig(path=tmp_path / "nope.tflite"))


def test_a_model_without_its_metadata_file_is_refused(tmp_path: Path) -> None:
    model, meta = _copy(tmp_path)
    meta.unlink()
    with pytest.raises(ModelError, match=r"metadata .* missing"):
        Runtime(ModelConfig(path=model))


def test_corrupt_model_fails_the_checksum(tmp_path: Path) -> None:
    model, _ = _copy(tmp_path)
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256"):
        Runtime(ModelConfig(path=model))


def test_garbage_with_a_matching_checksum_is_refused(tmp_path: Path) -> None:
    model, meta = _copy(tmp_path)
    model.write_bytes(b"not a flatbuffer" * 64)
    _edit_meta(meta, sha256=hashlib.sha256(model.read_bytes()).hexdigest())
    with pytest.raises(ModelError, match="cannot be loaded"):
        Runtime(ModelConfig(path=model))


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"input_shape": [1, 1024, 512, 3]}, "input shape"),
        ({"labels": ["none", "scratch", "crack", "dent", "dirt"]}, "labels"),
        ({"output_grid": [48, 24]}, "output shape"),
    ],
)
def test_metadata_that_does_not_describe_the_model_is_refused(tmp_path: Path, change: dict, words: str) -> None:
    model, meta = _copy(tmp_path)
    _edit_meta(meta, **change)
    with pytest.raises(ModelError, match=words):
        Runtime(ModelConfig(path=model))
