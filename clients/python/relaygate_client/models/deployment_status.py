from enum import StrEnum


class DeploymentStatus(StrEnum):
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    ROLLING_BACK = "rolling_back"
    RUNNING = "running"
    SUCCEEDED = "succeeded"

    def __str__(self) -> str:
        return str(self.value)
