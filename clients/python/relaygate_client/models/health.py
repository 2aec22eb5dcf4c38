from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define

from ..models.health_status import HealthStatus

if TYPE_CHECKING:
    from ..models.health_services import HealthServices


T = TypeVar("T", bound="Health")


@_attrs_define
class Health:
    """
    Attributes:
        status (HealthStatus):
        timestamp (datetime.datetime): ISO 8601 / RFC 3339, UTC
        version (str):
        uptime (int):
        services (HealthServices):
    """

    status: HealthStatus
    timestamp: datetime.datetime
    version: str
    uptime: int
    services: HealthServices

    def to_dict(self) -> dict[str, Any]:
        status = self.status.value

        timestamp = self.timestamp.isoformat()

        version = self.version

        uptime = self.uptime

        services = self.services.to_dict()

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "status": status,
                "timestamp": timestamp,
                "version": version,
                "uptime": uptime,
                "services": services,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.health_services import HealthServices  # noqa: PLC0415

        d = dict(src_dict)
        status = HealthStatus(d.pop("status"))

        timestamp = datetime.datetime.fromisoformat(d.pop("timestamp"))

        version = d.pop("version")

        uptime = d.pop("uptime")

        services = HealthServices.from_dict(d.pop("services"))

        health = cls(
            status=status,
            timestamp=timestamp,
            version=version,
            uptime=uptime,
            services=services,
        )

        return health
