from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.relay_settings import RelaySettings
    from ..models.sovereignty import Sovereignty
    from ..models.workspace_limits import WorkspaceLimits
    from ..models.workspace_model_aliases import WorkspaceModelAliases


T = TypeVar("T", bound="Workspace")


@_attrs_define
class Workspace:
    """
    Attributes:
        id (str):
        display_name (str):
        sovereignty (Sovereignty):
        limits (WorkspaceLimits):
        relay (RelaySettings):
        model_aliases (WorkspaceModelAliases): the workspace's own model names: alias -> a catalog model or a platform
            alias (they win over the platform's aliases for this workspace's calls)
        created_at (datetime.datetime): ISO 8601 / RFC 3339, UTC
        updated_at (datetime.datetime): ISO 8601 / RFC 3339, UTC
        plan (None | str | Unset): a plan's name (GET /v1/plans); admin only
        default_max_output_tokens (int | None | Unset):
    """

    id: str
    display_name: str
    sovereignty: Sovereignty
    limits: WorkspaceLimits
    relay: RelaySettings
    model_aliases: WorkspaceModelAliases
    created_at: datetime.datetime
    updated_at: datetime.datetime
    plan: None | str | Unset = UNSET
    default_max_output_tokens: int | None | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        id = self.id

        display_name = self.display_name

        sovereignty = self.sovereignty.to_dict()

        limits = self.limits.to_dict()

        relay = self.relay.to_dict()

        model_aliases = self.model_aliases.to_dict()

        created_at = self.created_at.isoformat()

        updated_at = self.updated_at.isoformat()

        plan: None | str | Unset
        if isinstance(self.plan, Unset):
            plan = UNSET
        else:
            plan = self.plan

        default_max_output_tokens: int | None | Unset
        if isinstance(self.default_max_output_tokens, Unset):
            default_max_output_tokens = UNSET
        else:
            default_max_output_tokens = self.default_max_output_tokens

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "id": id,
                "display_name": display_name,
                "sovereignty": sovereignty,
                "limits": limits,
                "relay": relay,
                "model_aliases": model_aliases,
                "created_at": created_at,
                "updated_at": updated_at,
            }
        )
        if plan is not UNSET:
            field_dict["plan"] = plan
        if default_max_output_tokens is not UNSET:
            field_dict["default_max_output_tokens"] = default_max_output_tokens

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.relay_settings import RelaySettings  # noqa: PLC0415
        from ..models.sovereignty import Sovereignty  # noqa: PLC0415
        from ..models.workspace_limits import WorkspaceLimits  # noqa: PLC0415
        from ..models.workspace_model_aliases import WorkspaceModelAliases  # noqa: PLC0415

        d = dict(src_dict)
        id = d.pop("id")

        display_name = d.pop("display_name")

        sovereignty = Sovereignty.from_dict(d.pop("sovereignty"))

        limits = WorkspaceLimits.from_dict(d.pop("limits"))

        relay = RelaySettings.from_dict(d.pop("relay"))

        model_aliases = WorkspaceModelAliases.from_dict(d.pop("model_aliases"))

        created_at = datetime.datetime.fromisoformat(d.pop("created_at"))

        updated_at = datetime.datetime.fromisoformat(d.pop("updated_at"))

        def _parse_plan(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        plan = _parse_plan(d.pop("plan", UNSET))

        def _parse_default_max_output_tokens(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        default_max_output_tokens = _parse_default_max_output_tokens(d.pop("default_max_output_tokens", UNSET))

        workspace = cls(
            id=id,
            display_name=display_name,
            sovereignty=sovereignty,
            limits=limits,
            relay=relay,
            model_aliases=model_aliases,
            created_at=created_at,
            updated_at=updated_at,
            plan=plan,
            default_max_output_tokens=default_max_output_tokens,
        )

        return workspace
