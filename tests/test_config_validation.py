from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from edge.config import ConfigError, load_config
from edge.config.root import AppConfig
from tests.booth_support import REPO, write_config


def check_config(path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", "check-config", str(path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize("name", ["demo.toml", "edge-grader.toml"])
def test_shipped_configs_are_valid(name: str, tmp_path: Path) -> None:
    # As under systemd: the example's secrets come from LoadCredential= files.
    for credential in ("cloud-api-key", "mqtt-password", "local-api-key", "technician-key"):
        (tmp_path / credential).write_text("not-a-real-secret\n")
    config = REPO / "config" / name
    installed = '"/opt/edge-grader/models/booth-defects.tflite"'
    if name == "edge-grader.toml":  # the model where install.sh puts it: here, this checkout's
        text = config.read_text()
        assert installed in text
        config = tmp_path / name
        config.write_text(text.replace(installed, f'"{REPO / "models" / "booth-defects.tflite"}"'))
    result = check_config(config, {"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout


def _models(annotation: object) -> list[type[BaseModel]]:
    """The config models an annotation holds: itself, a union's members, a table's values."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models(arg)]


def _keys(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str]]:
    """(dotted key, name) of every setting, each camera backend's included; ``*`` stands for a
    name the user gives (a camera, a light, a section)."""
    out = []
    for name, field in model.model_fields.items():
        table = "*." if typing.get_origin(field.annotation) is dict else ""
        models = _models(field.annotation)
        out += [k for m in models for k in _keys(m, f"{prefix}{name}.{table}")] or [(prefix + name, name)]
    return out


def test_the_example_config_shows_every_key() -> None:
    # The installed file is where a technician looks for a setting: one the code reads but the
    # file does not show might as well not exist.
    text = (REPO / "config" / "edge-grader.toml").read_text()
    keys = _keys(AppConfig)
    assert len(keys) > 100
    missing = [key for key, name in keys if not re.search(rf"(^#?\s*|[{{,]\s*){name}\s*=", text, re.M)]
    assert missing == []


def test_relative_paths_are_taken_from_the_config_folder(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path / "cfg", tmp_path / "imgs"))
    assert config.booth.state_dir == (tmp_path / "cfg" / "state").resolve()


def test_each_problem_names_key_value_and_expectation(tmp_path: Path) -> None:
    path = write_config(tmp_path, tmp_path / "imgs", extra="[storage]\nretention_days = -3\nbogus = 1\n")
    text = path.read_text().replace('id = "test-booth"', 'id = "bad booth!"')
    path.write_text(text)
    result = check_config(path)
    assert result.returncode == 3
    lines = [line for line in result.stderr.splitlines() if line.startswith("  - ")]
    joined = "\n".join(lines)
    assert any(line.startswith("  - booth.id = 'bad booth!'") for line in lines), joined
    assert any("storage.retention_days = -3" in line and "greater than 0" in line for line in lines), joined
    assert any("storage.bogus: unknown key" in line for line in lines), joined


def test_rig_must_name_a_configured_camera(tmp_path: Path) -> None:
    path = write_config(tmp_path, tmp_path / "imgs")
    path.write_text(
        path.read_text().replace(
            'camera = "cam"\nshots = 1\n\n[rig.sections.back]\ncamera = "cam"',
            'camera = "cam"\nshots = 1\n\n[rig.sections.back]\ncamera = "ghost"',
        )
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert any("rig.sections.back.camera: 'ghost' is not a camera" in p for p in info.value.problems)


def test_a_camera_width_without_its_height_is_refused(tmp_path: Path) -> None:
    path = write_config(tmp_path, tmp_path / "imgs")
    path.write_text(path.read_text().replace('backend = "replay"', 'backend = "opencv"\nsource = 0\nwidth = 1920'))
    path.write_text("\n".join(line for line in path.read_text().splitlines() if not line.startswith("folder = ")))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert any("width and height are set together, or neither" in p for p in info.value.problems), info.value.problems


def test_broken_toml_is_reported_not_raised(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[booth\nid = 1\n")
    result = check_config(path)
    assert result.returncode == 3
    assert "not valid TOML" in result.stderr


def test_missing_file_is_reported(tmp_path: Path) -> None:
    result = check_config(tmp_path / "absent.toml")
    assert result.returncode == 3
    assert "cannot read the file" in result.stderr


@pytest.mark.parametrize(("damage", "said"), [("missing", "is missing"), ("corrupt", "has sha256")])
def test_a_missing_or_corrupt_model_fails_the_check_before_the_daemon_starts(
    damage: str, said: str, tmp_path: Path
) -> None:
    model = tmp_path / "models" / "booth-defects.tflite"
    model.parent.mkdir()
    if damage == "corrupt":
        blob = bytearray((REPO / "models" / "booth-defects.tflite").read_bytes())
        blob[len(blob) // 2] ^= 0xFF
        model.write_bytes(bytes(blob))
        shutil.copy(REPO / "models" / "booth-defects.json", model.with_suffix(".json"))
    config = write_config(tmp_path / "booth", tmp_path / "imgs")
    config.write_text(config.read_text().replace("[model]\n", f'[model]\npath = "{model}"\n'))
    result = check_config(config)
    assert result.returncode == 3, result.stdout
    assert f"model.path: model file {model} {said}" in result.stderr


def test_secret_from_credentials_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "cloud-api-key").write_text("s3cret-value\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    path = write_config(tmp_path, tmp_path / "imgs", cloud='mode = "mirror"\napi_key = "credential:cloud-api-key"')
    config = load_config(path)
    assert config.cloud.api_key is not None
    assert config.cloud.api_key.get_secret_value() == "s3cret-value"
    assert "s3cret" not in repr(config)


def test_missing_secret_names_the_key_and_never_prints_a_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EDGE_TEST_NO_SUCH_VAR", raising=False)
    path = write_config(tmp_path, tmp_path / "imgs", cloud='mode = "mirror"\napi_key = "env:EDGE_TEST_NO_SUCH_VAR"')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    problem = next(p for p in info.value.problems if p.startswith("cloud.api_key"))
    assert "EDGE_TEST_NO_SUCH_VAR is not set" in problem
    assert "<secret>" in problem
