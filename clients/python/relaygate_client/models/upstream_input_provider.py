from enum import StrEnum


class UpstreamInputProvider(StrEnum):
    ANTHROPIC = "anthropic"
    BEDROCK = "bedrock"
    GOOGLE = "google"
    OPENAI = "openai"

    def __str__(self) -> str:
        return str(self.value)
