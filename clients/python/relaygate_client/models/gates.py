from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="Gates")


@_attrs_define
class Gates:
    """
    Attributes:
        max_error_rate (float | Unset):
        min_evidence_ratio (float | Unset):
        max_nacks (int | Unset):
        adoption_timeout (float | Unset):
        stale_grace (float | Unset):
        evidence_grace (float | Unset):
    """

    max_error_rate: float | Unset = UNSET
    min_evidence_ratio: float | Unset = UNSET
    max_nacks: int | Unset = UNSET
    adoption_timeout: float | Unset = UNSET
    stale_grace: float | Unset = UNSET
    evidence_grace: float | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        max_error_rate = self.max_error_rate

        min_evidence_ratio = self.min_evidence_ratio

        max_nacks = self.max_nacks

        adoption_timeout = self.adoption_timeout

        stale_grace = self.stale_grace

        evidence_grace = self.evidence_grace

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if max_error_rate is not UNSET:
            field_dict["max_error_rate"] = max_error_rate
        if min_evidence_ratio is not UNSET:
            field_dict["min_evidence_ratio"] = min_evidence_ratio
        if max_nacks is not UNSET:
            field_dict["max_nacks"] = max_nacks
        if adoption_timeout is not UNSET:
            field_dict["adoption_timeout"] = adoption_timeout
        if stale_grace is not UNSET:
            field_dict["stale_grace"] = stale_grace
        if evidence_grace is not UNSET:
            field_dict["evidence_grace"] = evidence_grace

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        max_error_rate = d.pop("max_error_rate", UNSET)

        min_evidence_ratio = d.pop("min_evidence_ratio", UNSET)

        max_nacks = d.pop("max_nacks", UNSET)

        adoption_timeout = d.pop("adoption_timeout", UNSET)

        stale_grace = d.pop("stale_grace", UNSET)

        evidence_grace = d.pop("evidence_grace", UNSET)

        gates = cls(
            max_error_rate=max_error_rate,
            min_evidence_ratio=min_evidence_ratio,
            max_nacks=max_nacks,
            adoption_timeout=adoption_timeout,
            stale_grace=stale_grace,
            evidence_grace=evidence_grace,
        )

        return gates
