from enum import StrEnum


class AgentPatchProtocol(StrEnum):
    GRPC = "grpc"
    HTTP = "http"
    HTTPS = "https"
    WEBSOCKET = "websocket"

    def __str__(self) -> str:
        return str(self.value)
