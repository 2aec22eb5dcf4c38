from enum import StrEnum


class AgentInputProtocol(StrEnum):
    GRPC = "grpc"
    HTTP = "http"
    HTTPS = "https"
    WEBSOCKET = "websocket"

    def __str__(self) -> str:
        return str(self.value)
