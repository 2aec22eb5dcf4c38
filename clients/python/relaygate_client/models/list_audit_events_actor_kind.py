from enum import StrEnum


class ListAuditEventsActorKind(StrEnum):
    ADMIN = "admin"
    FLEET = "fleet"
    JWT = "jwt"
    KEY = "key"
    SESSION = "session"

    def __str__(self) -> str:
        return str(self.value)
