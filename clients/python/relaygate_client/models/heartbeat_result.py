from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.heartbeat_result_commands_item import HeartbeatResultCommandsItem


T = TypeVar("T", bound="HeartbeatResult")


@_attrs_define
class HeartbeatResult:
    """
    Attributes:
        ok (bool):
        commands (list[HeartbeatResultCommandsItem] | Unset):
    """

    ok: bool
    commands: list[HeartbeatResultCommandsItem] | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        ok = self.ok

        commands: list[dict[str, Any]] | Unset = UNSET
        if not isinstance(self.commands, Unset):
            commands = []
            for commands_item_data in self.commands:
                commands_item = commands_item_data.to_dict()
                commands.append(commands_item)

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "ok": ok,
            }
        )
        if commands is not UNSET:
            field_dict["commands"] = commands

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.heartbeat_result_commands_item import HeartbeatResultCommandsItem  # noqa: PLC0415

        d = dict(src_dict)
        ok = d.pop("ok")

        _commands = d.pop("commands", UNSET)
        commands: list[HeartbeatResultCommandsItem] | Unset = UNSET
        if _commands is not UNSET:
            commands = []
            for commands_item_data in _commands:
                commands_item = HeartbeatResultCommandsItem.from_dict(commands_item_data)

                commands.append(commands_item)

        heartbeat_result = cls(
            ok=ok,
            commands=commands,
        )

        heartbeat_result.additional_properties = d
        return heartbeat_result

    @property
    def additional_keys(self) -> list[str]:
        return list(self.additional_properties.keys())

    def __getitem__(self, key: str) -> Any:
        return self.additional_properties[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.additional_properties[key] = value

    def __delitem__(self, key: str) -> None:
        del self.additional_properties[key]

    def __contains__(self, key: str) -> bool:
        return key in self.additional_properties
