from enum import StrEnum


class BudgetInputUnit(StrEnum):
    TOKENS = "tokens"
    USD = "usd"

    def __str__(self) -> str:
        return str(self.value)
