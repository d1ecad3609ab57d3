"""Read a TOML config file into ``AppConfig``, or explain every problem in one line each."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import ValidationError

from edge.config.root import AppConfig

SECRET_KEYS = frozenset({"key", "keys", "password", "api_key"})
MAX_SHOWN_VALUE = 60


class ConfigError(Exception):
    """A config that cannot be used; ``problems`` holds one human line per problem."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(problems))


def _shown(loc: tuple[int | str, ...], value: object) -> str:
    if any(str(part) in SECRET_KEYS for part in loc):
        return "<secret>"
    text = repr(value)
    return text if len(text) <= MAX_SHOWN_VALUE else text[: MAX_SHOWN_VALUE - 3] + "..."


def _describe(error: dict) -> str:
    loc = tuple(error.get("loc", ()))
    # Discriminated unions add the backend name to the path; it is not a key the user wrote.
    path = ".".join(str(part) for part in loc if part not in ("picamera2", "opencv", "replay"))
    message = error.get("msg", "invalid").removeprefix("Value error, ")
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        return f"{path}: unknown key (remove it, or check its spelling against config/edge-grader.toml)"
    if kind == "missing":
        return f"{path}: required key is missing"
    if not path:
        return message
    return f"{path} = {_shown(loc, error.get('input'))}: {message}"


def parse_config(data: dict, source: Path) -> AppConfig:
    try:
        return AppConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, [_describe(err) for err in exc.errors()]) from None


def load_config(path: Path) -> AppConfig:
    """Load and validate; relative paths in the file are taken from the file's folder."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(path, [f"cannot read the file: {exc.strerror}"]) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(path, [f"not valid TOML: {exc}"]) from None
    config = parse_config(data, path)
    return _anchor_paths(config, path.resolve().parent)


def _anchor_paths(config: AppConfig, base: Path) -> AppConfig:
    def anchored(p: Path) -> Path:
        return p if p.is_absolute() else (base / p).resolve()

    config.booth.state_dir = anchored(config.booth.state_dir)
    config.model.path = anchored(config.model.path)
    for camera in config.cameras.values():
        if camera.backend == "replay":
            camera.folder = anchored(camera.folder)
    if config.triggers.control_socket is not None:
        config.triggers.control_socket = anchored(config.triggers.control_socket)
    if config.mqtt.tls is not None:
        tls = config.mqtt.tls
        for name in ("ca_file", "cert_file", "key_file"):
            value = getattr(tls, name)
            if value is not None:
                setattr(tls, name, anchored(value))
    return config
