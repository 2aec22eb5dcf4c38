from enum import StrEnum


class AwsCredentialsSigningService(StrEnum):
    BEDROCK = "bedrock"

    def __str__(self) -> str:
        return str(self.value)
