from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

from ..models.deployment_status import DeploymentStatus
from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.deployment_gates import DeploymentGates
    from ..models.deployment_waves_item import DeploymentWavesItem


T = TypeVar("T", bound="Deployment")


@_attrs_define
class Deployment:
    """
    Attributes:
        id (str):
        policy_id (str):
        version (int):
        status (DeploymentStatus):
        waves (list[DeploymentWavesItem]):
        tenants (list[str] | Unset):
        wave_size (int | Unset):
        pause_seconds (float | Unset):
        gates (DeploymentGates | Unset):
        current_wave (int | Unset):
        stage (str | Unset):
        reason (None | str | Unset):
        created_by (str | Unset):
        created_at (datetime.datetime | Unset): ISO 8601 / RFC 3339, UTC
        updated_at (datetime.datetime | Unset): ISO 8601 / RFC 3339, UTC
        finished_at (datetime.datetime | None | Unset):
    """

    id: str
    policy_id: str
    version: int
    status: DeploymentStatus
    waves: list[DeploymentWavesItem]
    tenants: list[str] | Unset = UNSET
    wave_size: int | Unset = UNSET
    pause_seconds: float | Unset = UNSET
    gates: DeploymentGates | Unset = UNSET
    current_wave: int | Unset = UNSET
    stage: str | Unset = UNSET
    reason: None | str | Unset = UNSET
    created_by: str | Unset = UNSET
    created_at: datetime.datetime | Unset = UNSET
    updated_at: datetime.datetime | Unset = UNSET
    finished_at: datetime.datetime | None | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        id = self.id

        policy_id = self.policy_id

        version = self.version

        status = self.status.value

        waves = []
        for waves_item_data in self.waves:
            waves_item = waves_item_data.to_dict()
            waves.append(waves_item)

        tenants: list[str] | Unset = UNSET
        if not isinstance(self.tenants, Unset):
            tenants = self.tenants

        wave_size = self.wave_size

        pause_seconds = self.pause_seconds

        gates: dict[str, Any] | Unset = UNSET
        if not isinstance(self.gates, Unset):
            gates = self.gates.to_dict()

        current_wave = self.current_wave

        stage = self.stage

        reason: None | str | Unset
        if isinstance(self.reason, Unset):
            reason = UNSET
        else:
            reason = self.reason

        created_by = self.created_by

        created_at: str | Unset = UNSET
        if not isinstance(self.created_at, Unset):
            created_at = self.created_at.isoformat()

        updated_at: str | Unset = UNSET
        if not isinstance(self.updated_at, Unset):
            updated_at = self.updated_at.isoformat()

        finished_at: None | str | Unset
        if isinstance(self.finished_at, Unset):
            finished_at = UNSET
        elif isinstance(self.finished_at, datetime.datetime):
            finished_at = self.finished_at.isoformat()
        else:
            finished_at = self.finished_at

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "id": id,
                "policy_id": policy_id,
                "version": version,
                "status": status,
                "waves": waves,
            }
        )
        if tenants is not UNSET:
            field_dict["tenants"] = tenants
        if wave_size is not UNSET:
            field_dict["wave_size"] = wave_size
        if pause_seconds is not UNSET:
            field_dict["pause_seconds"] = pause_seconds
        if gates is not UNSET:
            field_dict["gates"] = gates
        if current_wave is not UNSET:
            field_dict["current_wave"] = current_wave
        if stage is not UNSET:
            field_dict["stage"] = stage
        if reason is not UNSET:
            field_dict["reason"] = reason
        if created_by is not UNSET:
            field_dict["created_by"] = created_by
        if created_at is not UNSET:
            field_dict["created_at"] = created_at
        if updated_at is not UNSET:
            field_dict["updated_at"] = updated_at
        if finished_at is not UNSET:
            field_dict["finished_at"] = finished_at

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.deployment_gates import DeploymentGates  # noqa: PLC0415
        from ..models.deployment_waves_item import DeploymentWavesItem  # noqa: PLC0415

        d = dict(src_dict)
        id = d.pop("id")

        policy_id = d.pop("policy_id")

        version = d.pop("version")

        status = DeploymentStatus(d.pop("status"))

        waves = []
        _waves = d.pop("waves")
        for waves_item_data in _waves:
            waves_item = DeploymentWavesItem.from_dict(waves_item_data)

            waves.append(waves_item)

        tenants = cast(list[str], d.pop("tenants", UNSET))

        wave_size = d.pop("wave_size", UNSET)

        pause_seconds = d.pop("pause_seconds", UNSET)

        _gates = d.pop("gates", UNSET)
        gates: DeploymentGates | Unset
        if isinstance(_gates, Unset):
            gates = UNSET
        else:
            gates = DeploymentGates.from_dict(_gates)

        current_wave = d.pop("current_wave", UNSET)

        stage = d.pop("stage", UNSET)

        def _parse_reason(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        reason = _parse_reason(d.pop("reason", UNSET))

        created_by = d.pop("created_by", UNSET)

        _created_at = d.pop("created_at", UNSET)
        created_at: datetime.datetime | Unset
        if isinstance(_created_at, Unset):
            created_at = UNSET
        else:
            created_at = datetime.datetime.fromisoformat(_created_at)

        _updated_at = d.pop("updated_at", UNSET)
        updated_at: datetime.datetime | Unset
        if isinstance(_updated_at, Unset):
            updated_at = UNSET
        else:
            updated_at = datetime.datetime.fromisoformat(_updated_at)

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

        deployment = cls(
            id=id,
            policy_id=policy_id,
            version=version,
            status=status,
            waves=waves,
            tenants=tenants,
            wave_size=wave_size,
            pause_seconds=pause_seconds,
            gates=gates,
            current_wave=current_wave,
            stage=stage,
            reason=reason,
            created_by=created_by,
            created_at=created_at,
            updated_at=updated_at,
            finished_at=finished_at,
        )

        return deployment
