from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define

if TYPE_CHECKING:
    from ..models.evidence_job import EvidenceJob


T = TypeVar("T", bound="EvidenceJobList")


@_attrs_define
class EvidenceJobList:
    """
    Attributes:
        bundles (list[EvidenceJob]):
    """

    bundles: list[EvidenceJob]

    def to_dict(self) -> dict[str, Any]:
        bundles = []
        for bundles_item_data in self.bundles:
            bundles_item = bundles_item_data.to_dict()
            bundles.append(bundles_item)

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "bundles": bundles,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.evidence_job import EvidenceJob  # noqa: PLC0415

        d = dict(src_dict)
        bundles = []
        _bundles = d.pop("bundles")
        for bundles_item_data in _bundles:
            bundles_item = EvidenceJob.from_dict(bundles_item_data)

            bundles.append(bundles_item)

        evidence_job_list = cls(
            bundles=bundles,
        )

        return evidence_job_list
