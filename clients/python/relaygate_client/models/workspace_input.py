from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.relay_settings import RelaySettings
    from ..models.sovereignty import Sovereignty
    from ..models.workspace_input_model_aliases import WorkspaceInputModelAliases
    from ..models.workspace_limits import WorkspaceLimits


T = TypeVar("T", bound="WorkspaceInput")


@_attrs_define
class WorkspaceInput:
    """
    Attributes:
        id (str):
        plan (None | str | Unset): a plan's name (GET /v1/plans); admin only
        display_name (str | Unset):
        sovereignty (Sovereignty | Unset):
        default_max_output_tokens (int | None | Unset):
        limits (WorkspaceLimits | Unset):
        relay (RelaySettings | Unset):
        model_aliases (WorkspaceInputModelAliases | Unset): the workspace's own model names: alias -> a catalog model or
            a platform alias (they win over the platform's aliases for this workspace's calls)
    """

    id: str
    plan: None | str | Unset = UNSET
    display_name: str | Unset = UNSET
    sovereignty: Sovereignty | Unset = UNSET
    default_max_output_tokens: int | None | Unset = UNSET
    limits: WorkspaceLimits | Unset = UNSET
    relay: RelaySettings | Unset = UNSET
    model_aliases: WorkspaceInputModelAliases | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        id = self.id

        plan: None | str | Unset
        if isinstance(self.plan, Unset):
            plan = UNSET
        else:
            plan = self.plan

        display_name = self.display_name

        sovereignty: dict[str, Any] | Unset = UNSET
        if not isinstance(self.sovereignty, Unset):
            sovereignty = self.sovereignty.to_dict()

        default_max_output_tokens: int | None | Unset
        if isinstance(self.default_max_output_tokens, Unset):
            default_max_output_tokens = UNSET
        else:
            default_max_output_tokens = self.default_max_output_tokens

        limits: dict[str, Any] | Unset = UNSET
        if not isinstance(self.limits, Unset):
            limits = self.limits.to_dict()

        relay: dict[str, Any] | Unset = UNSET
        if not isinstance(self.relay, Unset):
            relay = self.relay.to_dict()

        model_aliases: dict[str, Any] | Unset = UNSET
        if not isinstance(self.model_aliases, Unset):
            model_aliases = self.model_aliases.to_dict()

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "id": id,
            }
        )
        if plan is not UNSET:
            field_dict["plan"] = plan
        if display_name is not UNSET:
            field_dict["display_name"] = display_name
        if sovereignty is not UNSET:
            field_dict["sovereignty"] = sovereignty
        if default_max_output_tokens is not UNSET:
            field_dict["default_max_output_tokens"] = default_max_output_tokens
        if limits is not UNSET:
            field_dict["limits"] = limits
        if relay is not UNSET:
            field_dict["relay"] = relay
        if model_aliases is not UNSET:
            field_dict["model_aliases"] = model_aliases

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.relay_settings import RelaySettings  # noqa: PLC0415
        from ..models.sovereignty import Sovereignty  # noqa: PLC0415
        from ..models.workspace_input_model_aliases import WorkspaceInputModelAliases  # noqa: PLC0415
        from ..models.workspace_limits import WorkspaceLimits  # noqa: PLC0415

        d = dict(src_dict)
        id = d.pop("id")

        def _parse_plan(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        plan = _parse_plan(d.pop("plan", UNSET))

        display_name = d.pop("display_name", UNSET)

        _sovereignty = d.pop("sovereignty", UNSET)
        sovereignty: Sovereignty | Unset
        if isinstance(_sovereignty, Unset):
            sovereignty = UNSET
        else:
            sovereignty = Sovereignty.from_dict(_sovereignty)

        def _parse_default_max_output_tokens(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        default_max_output_tokens = _parse_default_max_output_tokens(d.pop("default_max_output_tokens", UNSET))

        _limits = d.pop("limits", UNSET)
        limits: WorkspaceLimits | Unset
        if isinstance(_limits, Unset):
            limits = UNSET
        else:
            limits = WorkspaceLimits.from_dict(_limits)

        _relay = d.pop("relay", UNSET)
        relay: RelaySettings | Unset
        if isinstance(_relay, Unset):
            relay = UNSET
        else:
            relay = RelaySettings.from_dict(_relay)

        _model_aliases = d.pop("model_aliases", UNSET)
        model_aliases: WorkspaceInputModelAliases | Unset
        if isinstance(_model_aliases, Unset):
            model_aliases = UNSET
        else:
            model_aliases = WorkspaceInputModelAliases.from_dict(_model_aliases)

        workspace_input = cls(
            id=id,
            plan=plan,
            display_name=display_name,
            sovereignty=sovereignty,
            default_max_output_tokens=default_max_output_tokens,
            limits=limits,
            relay=relay,
            model_aliases=model_aliases,
        )

        return workspace_input
