from enum import StrEnum


class CredentialRotateInputKind(StrEnum):
    PROVIDER = "provider"
    RECEIPT_SIGNING = "receipt_signing"
    TREE_HEAD = "tree_head"

    def __str__(self) -> str:
        return str(self.value)
