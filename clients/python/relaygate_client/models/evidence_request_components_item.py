from enum import StrEnum


class EvidenceRequestComponentsItem(StrEnum):
    DEPLOYMENTS = "deployments"
    FLEET_POSTURE = "fleet_posture"
    KEY_CUSTODY = "key_custody"
    POLICIES = "policies"
    RECEIPTS = "receipts"

    def __str__(self) -> str:
        return str(self.value)
