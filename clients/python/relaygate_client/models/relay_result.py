from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.relay_attempt import RelayAttempt


T = TypeVar("T", bound="RelayResult")


@_attrs_define
class RelayResult:
    """
    Attributes:
        relay_id (str):
        status_code (int):
        latency_ms (int):
        body (Any):
        fallback_used (bool):
        model (str | Unset):
        receipt_id (None | str | Unset):
        attempts (list[RelayAttempt] | Unset):
    """

    relay_id: str
    status_code: int
    latency_ms: int
    body: Any
    fallback_used: bool
    model: str | Unset = UNSET
    receipt_id: None | str | Unset = UNSET
    attempts: list[RelayAttempt] | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        relay_id = self.relay_id

        status_code = self.status_code

        latency_ms = self.latency_ms

        body = self.body

        fallback_used = self.fallback_used

        model = self.model

        receipt_id: None | str | Unset
        if isinstance(self.receipt_id, Unset):
            receipt_id = UNSET
        else:
            receipt_id = self.receipt_id

        attempts: list[dict[str, Any]] | Unset = UNSET
        if not isinstance(self.attempts, Unset):
            attempts = []
            for attempts_item_data in self.attempts:
                attempts_item = attempts_item_data.to_dict()
                attempts.append(attempts_item)

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "relay_id": relay_id,
                "status_code": status_code,
                "latency_ms": latency_ms,
                "body": body,
                "fallback_used": fallback_used,
            }
        )
        if model is not UNSET:
            field_dict["model"] = model
        if receipt_id is not UNSET:
            field_dict["receipt_id"] = receipt_id
        if attempts is not UNSET:
            field_dict["attempts"] = attempts

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.relay_attempt import RelayAttempt  # noqa: PLC0415

        d = dict(src_dict)
        relay_id = d.pop("relay_id")

        status_code = d.pop("status_code")

        latency_ms = d.pop("latency_ms")

        body = d.pop("body")

        fallback_used = d.pop("fallback_used")

        model = d.pop("model", UNSET)

        def _parse_receipt_id(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        receipt_id = _parse_receipt_id(d.pop("receipt_id", UNSET))

        _attempts = d.pop("attempts", UNSET)
        attempts: list[RelayAttempt] | Unset = UNSET
        if _attempts is not UNSET:
            attempts = []
            for attempts_item_data in _attempts:
                attempts_item = RelayAttempt.from_dict(attempts_item_data)

                attempts.append(attempts_item)

        relay_result = cls(
            relay_id=relay_id,
            status_code=status_code,
            latency_ms=latency_ms,
            body=body,
            fallback_used=fallback_used,
            model=model,
            receipt_id=receipt_id,
            attempts=attempts,
        )

        return relay_result
