from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.gates import Gates


T = TypeVar("T", bound="DeploymentInput")


@_attrs_define
class DeploymentInput:
    """
    Attributes:
        policy_id (str):
        version (int):
        tenants (list[str]):
        wave_size (int | Unset):  Default: 1.
        pause_seconds (float | Unset):  Default: 30.0.
        gates (Gates | Unset):
    """

    policy_id: str
    version: int
    tenants: list[str]
    wave_size: int | Unset = 1
    pause_seconds: float | Unset = 30.0
    gates: Gates | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        policy_id = self.policy_id

        version = self.version

        tenants = self.tenants

        wave_size = self.wave_size

        pause_seconds = self.pause_seconds

        gates: dict[str, Any] | Unset = UNSET
        if not isinstance(self.gates, Unset):
            gates = self.gates.to_dict()

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "policy_id": policy_id,
                "version": version,
                "tenants": tenants,
            }
        )
        if wave_size is not UNSET:
            field_dict["wave_size"] = wave_size
        if pause_seconds is not UNSET:
            field_dict["pause_seconds"] = pause_seconds
        if gates is not UNSET:
            field_dict["gates"] = gates

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.gates import Gates  # noqa: PLC0415

        d = dict(src_dict)
        policy_id = d.pop("policy_id")

        version = d.pop("version")

        tenants = cast(list[str], d.pop("tenants"))

        wave_size = d.pop("wave_size", UNSET)

        pause_seconds = d.pop("pause_seconds", UNSET)

        _gates = d.pop("gates", UNSET)
        gates: Gates | Unset
        if isinstance(_gates, Unset):
            gates = UNSET
        else:
            gates = Gates.from_dict(_gates)

        deployment_input = cls(
            policy_id=policy_id,
            version=version,
            tenants=tenants,
            wave_size=wave_size,
            pause_seconds=pause_seconds,
            gates=gates,
        )

        return deployment_input
