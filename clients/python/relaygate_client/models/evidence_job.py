from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

from ..models.evidence_job_status import EvidenceJobStatus
from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.evidence_job_params import EvidenceJobParams
    from ..models.evidence_job_stats_type_0 import EvidenceJobStatsType0


T = TypeVar("T", bound="EvidenceJob")


@_attrs_define
class EvidenceJob:
    """
    Attributes:
        id (str):
        status (EvidenceJobStatus):
        progress (float):
        stage (str):
        workspace (None | str | Unset):
        created_at (datetime.datetime | Unset): ISO 8601 / RFC 3339, UTC
        created_by (str | Unset):
        finished_at (datetime.datetime | None | Unset):
        error (None | str | Unset):
        sha256 (None | str | Unset):
        size_bytes (int | None | Unset):
        stats (EvidenceJobStatsType0 | None | Unset):
        params (EvidenceJobParams | Unset):
    """

    id: str
    status: EvidenceJobStatus
    progress: float
    stage: str
    workspace: None | str | Unset = UNSET
    created_at: datetime.datetime | Unset = UNSET
    created_by: str | Unset = UNSET
    finished_at: datetime.datetime | None | Unset = UNSET
    error: None | str | Unset = UNSET
    sha256: None | str | Unset = UNSET
    size_bytes: int | None | Unset = UNSET
    stats: EvidenceJobStatsType0 | None | Unset = UNSET
    params: EvidenceJobParams | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        from ..models.evidence_job_stats_type_0 import EvidenceJobStatsType0  # noqa: PLC0415

        id = self.id

        status = self.status.value

        progress = self.progress

        stage = self.stage

        workspace: None | str | Unset
        if isinstance(self.workspace, Unset):
            workspace = UNSET
        else:
            workspace = self.workspace

        created_at: str | Unset = UNSET
        if not isinstance(self.created_at, Unset):
            created_at = self.created_at.isoformat()

        created_by = self.created_by

        finished_at: None | str | Unset
        if isinstance(self.finished_at, Unset):
            finished_at = UNSET
        elif isinstance(self.finished_at, datetime.datetime):
            finished_at = self.finished_at.isoformat()
        else:
            finished_at = self.finished_at

        error: None | str | Unset
        if isinstance(self.error, Unset):
            error = UNSET
        else:
            error = self.error

        sha256: None | str | Unset
        if isinstance(self.sha256, Unset):
            sha256 = UNSET
        else:
            sha256 = self.sha256

        size_bytes: int | None | Unset
        if isinstance(self.size_bytes, Unset):
            size_bytes = UNSET
        else:
            size_bytes = self.size_bytes

        stats: dict[str, Any] | None | Unset
        if isinstance(self.stats, Unset):
            stats = UNSET
        elif isinstance(self.stats, EvidenceJobStatsType0):
            stats = self.stats.to_dict()
        else:
            stats = self.stats

        params: dict[str, Any] | Unset = UNSET
        if not isinstance(self.params, Unset):
            params = self.params.to_dict()

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "id": id,
                "status": status,
                "progress": progress,
                "stage": stage,
            }
        )
        if workspace is not UNSET:
            field_dict["workspace"] = workspace
        if created_at is not UNSET:
            field_dict["created_at"] = created_at
        if created_by is not UNSET:
            field_dict["created_by"] = created_by
        if finished_at is not UNSET:
            field_dict["finished_at"] = finished_at
        if error is not UNSET:
            field_dict["error"] = error
        if sha256 is not UNSET:
            field_dict["sha256"] = sha256
        if size_bytes is not UNSET:
            field_dict["size_bytes"] = size_bytes
        if stats is not UNSET:
            field_dict["stats"] = stats
        if params is not UNSET:
            field_dict["params"] = params

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.evidence_job_params import EvidenceJobParams  # noqa: PLC0415
        from ..models.evidence_job_stats_type_0 import EvidenceJobStatsType0  # noqa: PLC0415

        d = dict(src_dict)
        id = d.pop("id")

        status = EvidenceJobStatus(d.pop("status"))

        progress = d.pop("progress")

        stage = d.pop("stage")

        def _parse_workspace(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        workspace = _parse_workspace(d.pop("workspace", UNSET))

        _created_at = d.pop("created_at", UNSET)
        created_at: datetime.datetime | Unset
        if isinstance(_created_at, Unset):
            created_at = UNSET
        else:
            created_at = datetime.datetime.fromisoformat(_created_at)

        created_by = d.pop("created_by", UNSET)

        def _parse_finished_at(data: object) -> datetime.datetime | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                finished_at_type_0 = datetime.datetime.fromisoformat(data)

                return finished_at_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None | Unset, data)

        finished_at = _parse_finished_at(d.pop("finished_at", UNSET))

        def _parse_error(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        error = _parse_error(d.pop("error", UNSET))

        def _parse_sha256(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        sha256 = _parse_sha256(d.pop("sha256", UNSET))

        def _parse_size_bytes(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        size_bytes = _parse_size_bytes(d.pop("size_bytes", UNSET))

        def _parse_stats(data: object) -> EvidenceJobStatsType0 | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                stats_type_0 = EvidenceJobStatsType0.from_dict(data)

                return stats_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(EvidenceJobStatsType0 | None | Unset, data)

        stats = _parse_stats(d.pop("stats", UNSET))

        _params = d.pop("params", UNSET)
        params: EvidenceJobParams | Unset
        if isinstance(_params, Unset):
            params = UNSET
        else:
            params = EvidenceJobParams.from_dict(_params)

        evidence_job = cls(
            id=id,
            status=status,
            progress=progress,
            stage=stage,
            workspace=workspace,
            created_at=created_at,
            created_by=created_by,
            finished_at=finished_at,
            error=error,
            sha256=sha256,
            size_bytes=size_bytes,
            stats=stats,
            params=params,
        )

        return evidence_job
