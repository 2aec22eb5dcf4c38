from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.verify_report_checks_item import VerifyReportChecksItem
    from ..models.verify_report_failures_item import VerifyReportFailuresItem
    from ..models.verify_report_stats import VerifyReportStats


T = TypeVar("T", bound="VerifyReport")


@_attrs_define
class VerifyReport:
    """
    Attributes:
        ok (bool):
        failures (list[VerifyReportFailuresItem]):
        checks (list[VerifyReportChecksItem]):
        bundle_id (str | Unset):
        trust (str | Unset):
        stats (VerifyReportStats | Unset):
    """

    ok: bool
    failures: list[VerifyReportFailuresItem]
    checks: list[VerifyReportChecksItem]
    bundle_id: str | Unset = UNSET
    trust: str | Unset = UNSET
    stats: VerifyReportStats | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        ok = self.ok

        failures = []
        for failures_item_data in self.failures:
            failures_item = failures_item_data.to_dict()
            failures.append(failures_item)

        checks = []
        for checks_item_data in self.checks:
            checks_item = checks_item_data.to_dict()
            checks.append(checks_item)

        bundle_id = self.bundle_id

        trust = self.trust

        stats: dict[str, Any] | Unset = UNSET
        if not isinstance(self.stats, Unset):
            stats = self.stats.to_dict()

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "ok": ok,
                "failures": failures,
                "checks": checks,
            }
        )
        if bundle_id is not UNSET:
            field_dict["bundle_id"] = bundle_id
        if trust is not UNSET:
            field_dict["trust"] = trust
        if stats is not UNSET:
            field_dict["stats"] = stats

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.verify_report_checks_item import VerifyReportChecksItem  # noqa: PLC0415
        from ..models.verify_report_failures_item import VerifyReportFailuresItem  # noqa: PLC0415
        from ..models.verify_report_stats import VerifyReportStats  # noqa: PLC0415

        d = dict(src_dict)
        ok = d.pop("ok")

        failures = []
        _failures = d.pop("failures")
        for failures_item_data in _failures:
            failures_item = VerifyReportFailuresItem.from_dict(failures_item_data)

            failures.append(failures_item)

        checks = []
        _checks = d.pop("checks")
        for checks_item_data in _checks:
            checks_item = VerifyReportChecksItem.from_dict(checks_item_data)

            checks.append(checks_item)

        bundle_id = d.pop("bundle_id", UNSET)

        trust = d.pop("trust", UNSET)

        _stats = d.pop("stats", UNSET)
        stats: VerifyReportStats | Unset
        if isinstance(_stats, Unset):
            stats = UNSET
        else:
            stats = VerifyReportStats.from_dict(_stats)

        verify_report = cls(
            ok=ok,
            failures=failures,
            checks=checks,
            bundle_id=bundle_id,
            trust=trust,
            stats=stats,
        )

        return verify_report
