from enum import StrEnum


class KeyScopePermissionsItem(StrEnum):
    AGENTSREAD = "agents:read"
    AGENTSWRITE = "agents:write"
    BUDGETSREAD = "budgets:read"
    BUDGETSWRITE = "budgets:write"
    EVIDENCEREAD = "evidence:read"
    EVIDENCEWRITE = "evidence:write"
    GATEWAYCALL = "gateway:call"
    HEALTHREAD = "health:read"
    KEYSREAD = "keys:read"
    KEYSWRITE = "keys:write"
    LOGSREAD = "logs:read"
    POLICIESREAD = "policies:read"
    POLICIESWRITE = "policies:write"
    RELAY = "relay"
    SESSIONSWRITE = "sessions:write"
    USAGEREAD = "usage:read"
    VALUE_17 = "*"
    WORKSPACEREAD = "workspace:read"

    def __str__(self) -> str:
        return str(self.value)
