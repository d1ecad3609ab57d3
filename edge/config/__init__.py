"""Configuration: TOML validated by pydantic, one model per concern."""

from edge.config.load import ConfigError, load_config, parse_config
from edge.config.root import AppConfig

__all__ = ["AppConfig", "ConfigError", "load_config", "parse_config"]
