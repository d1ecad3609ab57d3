"""Secret values in the config: literal, from the environment, or from a systemd credential.

``"env:NAME"`` reads the environment variable NAME; ``"credential:NAME"`` reads the file NAME in
``$CREDENTIALS_DIRECTORY`` (systemd ``LoadCredential=``). Secrets are ``SecretStr`` so that they
never appear in a repr, a log line or a validation error.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

from pydantic import BeforeValidator, SecretStr

ENV_PREFIX = "env:"
CREDENTIAL_PREFIX = "credential:"


def resolve_secret(value: object) -> object:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if not isinstance(value, str):
        return value
    if value.startswith(ENV_PREFIX):
        name = value.removeprefix(ENV_PREFIX)
        if name not in os.environ:
            raise ValueError(f"environment variable {name} is not set (set it, or give the value inline)")
        return os.environ[name]
    if value.startswith(CREDENTIAL_PREFIX):
        name = value.removeprefix(CREDENTIAL_PREFIX)
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"credential name {name!r} must be a plain file name")
        directory = os.environ.get("CREDENTIALS_DIRECTORY")
        if not directory:
            raise ValueError(f"credential {name} needs $CREDENTIALS_DIRECTORY (systemd LoadCredential=) to be set")
        path = Path(directory) / name
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"credential {name} cannot be read: {exc.strerror}") from None
    return value


Secret = Annotated[SecretStr, BeforeValidator(resolve_secret)]


def present(secrets: Sequence[SecretStr]) -> list[bytes]:
    """The secrets that are set, as bytes: an empty one (a credential file not yet written) is no
    key, and never opens anything."""
    return [v for v in (secret.get_secret_value().encode() for secret in secrets) if v]
