from enum import StrEnum


class EffectiveLimitsSourcesAdditionalProperty(StrEnum):
    DEFAULT = "default"
    PLAN = "plan"
    WORKSPACE = "workspace"

    def __str__(self) -> str:
        return str(self.value)
