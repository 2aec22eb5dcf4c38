from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="PlanLimits")


@_attrs_define
class PlanLimits:
    """
    Attributes:
        control_plane_rps (float | None | Unset): control-plane API calls per second
        requests_per_second (float | None | Unset): gateway calls per second (hot path)
        tokens_per_minute (int | None | Unset): worst-case tokens per minute (hot path)
        log_retention_days (int | None | Unset): request logs and audit events kept this many days (null: kept);
            receipts in the Merkle log stay provable
        webhook_subscriptions (int | None | Unset): webhook subscriptions allowed
    """

    control_plane_rps: float | None | Unset = UNSET
    requests_per_second: float | None | Unset = UNSET
    tokens_per_minute: int | None | Unset = UNSET
    log_retention_days: int | None | Unset = UNSET
    webhook_subscriptions: int | None | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        control_plane_rps: float | None | Unset
        if isinstance(self.control_plane_rps, Unset):
            control_plane_rps = UNSET
        else:
            control_plane_rps = self.control_plane_rps

        requests_per_second: float | None | Unset
        if isinstance(self.requests_per_second, Unset):
            requests_per_second = UNSET
        else:
            requests_per_second = self.requests_per_second

        tokens_per_minute: int | None | Unset
        if isinstance(self.tokens_per_minute, Unset):
            tokens_per_minute = UNSET
        else:
            tokens_per_minute = self.tokens_per_minute

        log_retention_days: int | None | Unset
        if isinstance(self.log_retention_days, Unset):
            log_retention_days = UNSET
        else:
            log_retention_days = self.log_retention_days

        webhook_subscriptions: int | None | Unset
        if isinstance(self.webhook_subscriptions, Unset):
            webhook_subscriptions = UNSET
        else:
            webhook_subscriptions = self.webhook_subscriptions

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if control_plane_rps is not UNSET:
            field_dict["control_plane_rps"] = control_plane_rps
        if requests_per_second is not UNSET:
            field_dict["requests_per_second"] = requests_per_second
        if tokens_per_minute is not UNSET:
            field_dict["tokens_per_minute"] = tokens_per_minute
        if log_retention_days is not UNSET:
            field_dict["log_retention_days"] = log_retention_days
        if webhook_subscriptions is not UNSET:
            field_dict["webhook_subscriptions"] = webhook_subscriptions

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)

        def _parse_control_plane_rps(data: object) -> float | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(float | None | Unset, data)

        control_plane_rps = _parse_control_plane_rps(d.pop("control_plane_rps", UNSET))

        def _parse_requests_per_second(data: object) -> float | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(float | None | Unset, data)

        requests_per_second = _parse_requests_per_second(d.pop("requests_per_second", UNSET))

        def _parse_tokens_per_minute(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        tokens_per_minute = _parse_tokens_per_minute(d.pop("tokens_per_minute", UNSET))

        def _parse_log_retention_days(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        log_retention_days = _parse_log_retention_days(d.pop("log_retention_days", UNSET))

        def _parse_webhook_subscriptions(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        webhook_subscriptions = _parse_webhook_subscriptions(d.pop("webhook_subscriptions", UNSET))

        plan_limits = cls(
            control_plane_rps=control_plane_rps,
            requests_per_second=requests_per_second,
            tokens_per_minute=tokens_per_minute,
            log_retention_days=log_retention_days,
            webhook_subscriptions=webhook_subscriptions,
        )

        return plan_limits
