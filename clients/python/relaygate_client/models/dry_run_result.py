from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.dry_run_result_decision import DryRunResultDecision
    from ..models.dry_run_result_input import DryRunResultInput
    from ..models.dry_run_result_policy import DryRunResultPolicy


T = TypeVar("T", bound="DryRunResult")


@_attrs_define
class DryRunResult:
    """
    Attributes:
        policy (DryRunResultPolicy):
        decision (DryRunResultDecision):
        input_ (DryRunResultInput):
        enforced (bool):
        bundle_revision (str | Unset):
    """

    policy: DryRunResultPolicy
    decision: DryRunResultDecision
    input_: DryRunResultInput
    enforced: bool
    bundle_revision: str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        policy = self.policy.to_dict()

        decision = self.decision.to_dict()

        input_ = self.input_.to_dict()

        enforced = self.enforced

        bundle_revision = self.bundle_revision

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "policy": policy,
                "decision": decision,
                "input": input_,
                "enforced": enforced,
            }
        )
        if bundle_revision is not UNSET:
            field_dict["bundle_revision"] = bundle_revision

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.dry_run_result_decision import DryRunResultDecision  # noqa: PLC0415
        from ..models.dry_run_result_input import DryRunResultInput  # noqa: PLC0415
        from ..models.dry_run_result_policy import DryRunResultPolicy  # noqa: PLC0415

        d = dict(src_dict)
        policy = DryRunResultPolicy.from_dict(d.pop("policy"))

        decision = DryRunResultDecision.from_dict(d.pop("decision"))

        input_ = DryRunResultInput.from_dict(d.pop("input"))

        enforced = d.pop("enforced")

        bundle_revision = d.pop("bundle_revision", UNSET)

        dry_run_result = cls(
            policy=policy,
            decision=decision,
            input_=input_,
            enforced=enforced,
            bundle_revision=bundle_revision,
        )

        return dry_run_result
