from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListInstancesRequest(_message.Message):
    __slots__ = ("tenant",)
    TENANT_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    def __init__(self, tenant: _Optional[str] = ...) -> None: ...

class Instance(_message.Message):
    __slots__ = ("id", "tenant", "zone", "version", "registered_at", "last_seen_at", "staleness_seconds", "stale", "bundle_revision", "receipts_backlog", "xds_connected", "posture", "xds")
    ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    ZONE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_AT_FIELD_NUMBER: _ClassVar[int]
    STALENESS_SECONDS_FIELD_NUMBER: _ClassVar[int]
    STALE_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_REVISION_FIELD_NUMBER: _ClassVar[int]
    RECEIPTS_BACKLOG_FIELD_NUMBER: _ClassVar[int]
    XDS_CONNECTED_FIELD_NUMBER: _ClassVar[int]
    POSTURE_FIELD_NUMBER: _ClassVar[int]
    XDS_FIELD_NUMBER: _ClassVar[int]
    id: str
    tenant: str
    zone: str
    version: str
    registered_at: str
    last_seen_at: str
    staleness_seconds: float
    stale: bool
    bundle_revision: str
    receipts_backlog: int
    xds_connected: bool
    posture: _struct_pb2.Struct
    xds: _struct_pb2.Struct
    def __init__(self, id: _Optional[str] = ..., tenant: _Optional[str] = ..., zone: _Optional[str] = ..., version: _Optional[str] = ..., registered_at: _Optional[str] = ..., last_seen_at: _Optional[str] = ..., staleness_seconds: _Optional[float] = ..., stale: _Optional[bool] = ..., bundle_revision: _Optional[str] = ..., receipts_backlog: _Optional[int] = ..., xds_connected: _Optional[bool] = ..., posture: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., xds: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class ListInstancesResponse(_message.Message):
    __slots__ = ("instances",)
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    instances: _containers.RepeatedCompositeFieldContainer[Instance]
    def __init__(self, instances: _Optional[_Iterable[_Union[Instance, _Mapping]]] = ...) -> None: ...

class GetHealthRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TenantHealth(_message.Message):
    __slots__ = ("tenant", "status", "instances", "live", "stale", "bundle_revisions", "nacking", "receipts_backlog", "rates")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    LIVE_FIELD_NUMBER: _ClassVar[int]
    STALE_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_REVISIONS_FIELD_NUMBER: _ClassVar[int]
    NACKING_FIELD_NUMBER: _ClassVar[int]
    RECEIPTS_BACKLOG_FIELD_NUMBER: _ClassVar[int]
    RATES_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    status: str
    instances: int
    live: int
    stale: _containers.RepeatedScalarFieldContainer[str]
    bundle_revisions: _containers.RepeatedScalarFieldContainer[str]
    nacking: _containers.RepeatedScalarFieldContainer[str]
    receipts_backlog: int
    rates: _struct_pb2.Struct
    def __init__(self, tenant: _Optional[str] = ..., status: _Optional[str] = ..., instances: _Optional[int] = ..., live: _Optional[int] = ..., stale: _Optional[_Iterable[str]] = ..., bundle_revisions: _Optional[_Iterable[str]] = ..., nacking: _Optional[_Iterable[str]] = ..., receipts_backlog: _Optional[int] = ..., rates: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class GetHealthResponse(_message.Message):
    __slots__ = ("tenants", "generated_at")
    TENANTS_FIELD_NUMBER: _ClassVar[int]
    GENERATED_AT_FIELD_NUMBER: _ClassVar[int]
    tenants: _containers.RepeatedCompositeFieldContainer[TenantHealth]
    generated_at: str
    def __init__(self, tenants: _Optional[_Iterable[_Union[TenantHealth, _Mapping]]] = ..., generated_at: _Optional[str] = ...) -> None: ...

class ListDeploymentsRequest(_message.Message):
    __slots__ = ("status", "limit")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    status: str
    limit: int
    def __init__(self, status: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class Deployment(_message.Message):
    __slots__ = ("id", "status", "policy_id", "version", "record")
    ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    POLICY_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    RECORD_FIELD_NUMBER: _ClassVar[int]
    id: str
    status: str
    policy_id: str
    version: int
    record: _struct_pb2.Struct
    def __init__(self, id: _Optional[str] = ..., status: _Optional[str] = ..., policy_id: _Optional[str] = ..., version: _Optional[int] = ..., record: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class ListDeploymentsResponse(_message.Message):
    __slots__ = ("deployments",)
    DEPLOYMENTS_FIELD_NUMBER: _ClassVar[int]
    deployments: _containers.RepeatedCompositeFieldContainer[Deployment]
    def __init__(self, deployments: _Optional[_Iterable[_Union[Deployment, _Mapping]]] = ...) -> None: ...

class StreamAuditEventsRequest(_message.Message):
    __slots__ = ("cursor", "from_end", "workspace", "kinds", "follow")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    FROM_END_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    from_end: bool
    workspace: str
    kinds: _containers.RepeatedScalarFieldContainer[str]
    follow: bool
    def __init__(self, cursor: _Optional[str] = ..., from_end: _Optional[bool] = ..., workspace: _Optional[str] = ..., kinds: _Optional[_Iterable[str]] = ..., follow: _Optional[bool] = ...) -> None: ...

class AuditEvent(_message.Message):
    __slots__ = ("cursor", "id", "kind", "workspace", "occurred_at", "actor", "key_id", "model", "decision", "status", "policies", "detail")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    POLICIES_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    id: str
    kind: str
    workspace: str
    occurred_at: str
    actor: str
    key_id: str
    model: str
    decision: str
    status: int
    policies: _containers.RepeatedScalarFieldContainer[str]
    detail: _struct_pb2.Struct
    def __init__(self, cursor: _Optional[str] = ..., id: _Optional[str] = ..., kind: _Optional[str] = ..., workspace: _Optional[str] = ..., occurred_at: _Optional[str] = ..., actor: _Optional[str] = ..., key_id: _Optional[str] = ..., model: _Optional[str] = ..., decision: _Optional[str] = ..., status: _Optional[int] = ..., policies: _Optional[_Iterable[str]] = ..., detail: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...
