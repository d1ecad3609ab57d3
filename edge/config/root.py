"""The whole configuration file: one section per concern."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge.config.api import ApiConfig
from edge.config.booth import BoothConfig
from edge.config.capture import CameraConfig, LightConfig, RigConfig
from edge.config.cloud import CloudConfig
from edge.config.model import GradingConfig, ModelConfig
from edge.config.mqtt import MqttConfig
from edge.config.storage import StorageConfig
from edge.config.triggers import TriggersConfig


class AppConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    booth: BoothConfig
    cameras: dict[str, CameraConfig] = Field(min_length=1)
    lights: dict[str, LightConfig] = Field(default_factory=dict)
    rig: RigConfig
    triggers: TriggersConfig = Field(default_factory=TriggersConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    grading: GradingConfig = Field(default_factory=GradingConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    cloud: CloudConfig = Field(default_factory=CloudConfig)

    @model_validator(mode="after")
    def _rig_refers_to_known_parts(self) -> AppConfig:
        problems = []
        for section, rig in self.rig.sections.items():
            if section not in self.booth.sections:
                problems.append(f"rig.sections.{section}: not one of booth.sections {self.booth.sections}")
            if rig.camera not in self.cameras:
                problems.append(
                    f"rig.sections.{section}.camera: {rig.camera!r} is not a camera in [cameras] "
                    f"({', '.join(sorted(self.cameras))})"
                )
            problems.extend(
                f"rig.sections.{section}.lights: {light!r} is not a light in [lights]"
                for light in rig.lights
                if light not in self.lights
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self
