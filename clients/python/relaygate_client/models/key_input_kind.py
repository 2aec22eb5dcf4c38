from enum import StrEnum


class KeyInputKind(StrEnum):
    READ_ONLY = "read_only"
    STANDARD = "standard"

    def __str__(self) -> str:
        return str(self.value)
