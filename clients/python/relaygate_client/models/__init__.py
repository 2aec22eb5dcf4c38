"""Contains all the data models used in inputs/outputs"""

from .agent import Agent
from .agent_input import AgentInput
from .agent_input_protocol import AgentInputProtocol
from .agent_list import AgentList
from .agent_patch import AgentPatch
from .agent_patch_protocol import AgentPatchProtocol
from .audit_event import AuditEvent
from .audit_event_detail_type_0 import AuditEventDetailType0
from .audit_event_full import AuditEventFull
from .audit_event_full_inclusion_proof_type_0 import AuditEventFullInclusionProofType0
from .audit_event_full_receipt_type_0 import AuditEventFullReceiptType0
from .audit_event_tokens_type_0 import AuditEventTokensType0
from .audit_page import AuditPage
from .aws_credentials import AwsCredentials
from .aws_credentials_signing_service import AwsCredentialsSigningService
from .budget import Budget
from .budget_input import BudgetInput
from .budget_input_unit import BudgetInputUnit
from .budget_input_window import BudgetInputWindow
from .budget_list import BudgetList
from .budget_update import BudgetUpdate
from .bundle_key import BundleKey
from .bundle_key_algorithm import BundleKeyAlgorithm
from .catalog_model import CatalogModel
from .catalog_model_upstreams_item import CatalogModelUpstreamsItem
from .checkpoint import Checkpoint
from .checkpoint_list import CheckpointList
from .consistency_proof import ConsistencyProof
from .credential_rotate_input import CredentialRotateInput
from .credential_rotate_input_kind import CredentialRotateInputKind
from .custody_list import CustodyList
from .custody_list_events_item import CustodyListEventsItem
from .deployment import Deployment
from .deployment_gates import DeploymentGates
from .deployment_input import DeploymentInput
from .deployment_list import DeploymentList
from .deployment_status import DeploymentStatus
from .deployment_waves_item import DeploymentWavesItem
from .dry_run_input import DryRunInput
from .dry_run_input_input import DryRunInputInput
from .dry_run_input_request import DryRunInputRequest
from .dry_run_input_request_body import DryRunInputRequestBody
from .dry_run_input_request_endpoint import DryRunInputRequestEndpoint
from .dry_run_result import DryRunResult
from .dry_run_result_decision import DryRunResultDecision
from .dry_run_result_input import DryRunResultInput
from .dry_run_result_policy import DryRunResultPolicy
from .effect import Effect
from .effective_limits import EffectiveLimits
from .effective_limits_sources import EffectiveLimitsSources
from .effective_limits_sources_additional_property import EffectiveLimitsSourcesAdditionalProperty
from .error import Error
from .error_error import ErrorError
from .error_error_details import ErrorErrorDetails
from .evidence_job import EvidenceJob
from .evidence_job_list import EvidenceJobList
from .evidence_job_params import EvidenceJobParams
from .evidence_job_stats_type_0 import EvidenceJobStatsType0
from .evidence_job_status import EvidenceJobStatus
from .evidence_request import EvidenceRequest
from .evidence_request_components_item import EvidenceRequestComponentsItem
from .export_logs_endpoint import ExportLogsEndpoint
from .export_logs_format import ExportLogsFormat
from .fleet_health import FleetHealth
from .fleet_health_tenants_item import FleetHealthTenantsItem
from .fleet_health_tenants_item_status import FleetHealthTenantsItemStatus
from .gates import Gates
from .get_open_api_response_200 import GetOpenApiResponse200
from .health import Health
from .health_services import HealthServices
from .health_status import HealthStatus
from .heartbeat_body import HeartbeatBody
from .heartbeat_result import HeartbeatResult
from .heartbeat_result_commands_item import HeartbeatResultCommandsItem
from .inclusion_proof import InclusionProof
from .ingest_result import IngestResult
from .ingest_result_deferred_item import IngestResultDeferredItem
from .ingest_result_rejected_item import IngestResultRejectedItem
from .instance import Instance
from .instance_list import InstanceList
from .instance_posture import InstancePosture
from .instance_registration import InstanceRegistration
from .introduce_key_response_200 import IntroduceKeyResponse200
from .key import Key
from .key_created import KeyCreated
from .key_input import KeyInput
from .key_input_kind import KeyInputKind
from .key_introduction import KeyIntroduction
from .key_introduction_event import KeyIntroductionEvent
from .key_list import KeyList
from .key_scope import KeyScope
from .key_scope_endpoints_item import KeyScopeEndpointsItem
from .key_scope_permissions_item import KeyScopePermissionsItem
from .list_audit_events_actor_kind import ListAuditEventsActorKind
from .list_audit_events_decision import ListAuditEventsDecision
from .list_deployments_status import ListDeploymentsStatus
from .list_logs_endpoint import ListLogsEndpoint
from .list_webhook_deliveries_status import ListWebhookDeliveriesStatus
from .liveness_response_200 import LivenessResponse200
from .log_entry import LogEntry
from .log_entry_fallback_type_0 import LogEntryFallbackType0
from .log_entry_metadata_type_0 import LogEntryMetadataType0
from .log_entry_tokens import LogEntryTokens
from .log_keys import LogKeys
from .log_page import LogPage
from .model_catalog import ModelCatalog
from .model_catalog_workspace_aliases import ModelCatalogWorkspaceAliases
from .model_price import ModelPrice
from .opa_agent_list import OpaAgentList
from .opa_agent_list_agents_item import OpaAgentListAgentsItem
from .opa_agent_list_agents_item_bundles import OpaAgentListAgentsItemBundles
from .opa_agent_list_agents_item_errors_item import OpaAgentListAgentsItemErrorsItem
from .opa_agent_list_agents_item_labels import OpaAgentListAgentsItemLabels
from .opa_decision_log_batch_item import OpaDecisionLogBatchItem
from .opa_decision_log_batch_item_bundles import OpaDecisionLogBatchItemBundles
from .opa_decision_log_batch_item_labels import OpaDecisionLogBatchItemLabels
from .opa_ingest_result import OpaIngestResult
from .opa_status_report import OpaStatusReport
from .opa_status_report_bundles import OpaStatusReportBundles
from .opa_status_report_labels import OpaStatusReportLabels
from .opa_status_report_plugins import OpaStatusReportPlugins
from .opa_status_result import OpaStatusResult
from .plan_limits import PlanLimits
from .plan_list import PlanList
from .plan_list_plans_item import PlanListPlansItem
from .policy import Policy
from .policy_list import PolicyList
from .policy_version import PolicyVersion
from .policy_version_list import PolicyVersionList
from .receipt_batch import ReceiptBatch
from .receipt_batch_receipts_item import ReceiptBatchReceiptsItem
from .relay_attempt import RelayAttempt
from .relay_event import RelayEvent
from .relay_input import RelayInput
from .relay_input_metadata import RelayInputMetadata
from .relay_input_payload import RelayInputPayload
from .relay_result import RelayResult
from .relay_settings import RelaySettings
from .relay_settings_fallbacks import RelaySettingsFallbacks
from .rotate_input import RotateInput
from .rotate_result import RotateResult
from .rotation import Rotation
from .rotation_detail import RotationDetail
from .session import Session
from .session_input import SessionInput
from .signing_key_input import SigningKeyInput
from .signing_key_input_proof import SigningKeyInputProof
from .sovereignty import Sovereignty
from .upstream import Upstream
from .upstream_envoy_cluster_overrides import UpstreamEnvoyClusterOverrides
from .upstream_input import UpstreamInput
from .upstream_input_envoy_cluster_overrides import UpstreamInputEnvoyClusterOverrides
from .upstream_input_models import UpstreamInputModels
from .upstream_input_provider import UpstreamInputProvider
from .upstream_list import UpstreamList
from .upstream_models import UpstreamModels
from .usage import Usage
from .usage_row import UsageRow
from .verify_report import VerifyReport
from .verify_report_checks_item import VerifyReportChecksItem
from .verify_report_failures_item import VerifyReportFailuresItem
from .verify_report_stats import VerifyReportStats
from .webhook import Webhook
from .webhook_delivery import WebhookDelivery
from .webhook_delivery_page import WebhookDeliveryPage
from .webhook_delivery_status import WebhookDeliveryStatus
from .webhook_input import WebhookInput
from .webhook_list import WebhookList
from .workspace import Workspace
from .workspace_input import WorkspaceInput
from .workspace_input_model_aliases import WorkspaceInputModelAliases
from .workspace_limits import WorkspaceLimits
from .workspace_list import WorkspaceList
from .workspace_model_aliases import WorkspaceModelAliases
from .workspace_update import WorkspaceUpdate
from .workspace_update_model_aliases import WorkspaceUpdateModelAliases

__all__ = (
    "Agent",
    "AgentInput",
    "AgentInputProtocol",
    "AgentList",
    "AgentPatch",
    "AgentPatchProtocol",
    "AuditEvent",
    "AuditEventDetailType0",
    "AuditEventFull",
    "AuditEventFullInclusionProofType0",
    "AuditEventFullReceiptType0",
    "AuditEventTokensType0",
    "AuditPage",
    "AwsCredentials",
    "AwsCredentialsSigningService",
    "Budget",
    "BudgetInput",
    "BudgetInputUnit",
    "BudgetInputWindow",
    "BudgetList",
    "BudgetUpdate",
    "BundleKey",
    "BundleKeyAlgorithm",
    "CatalogModel",
    "CatalogModelUpstreamsItem",
    "Checkpoint",
    "CheckpointList",
    "ConsistencyProof",
    "CredentialRotateInput",
    "CredentialRotateInputKind",
    "CustodyList",
    "CustodyListEventsItem",
    "Deployment",
    "DeploymentGates",
    "DeploymentInput",
    "DeploymentList",
    "DeploymentStatus",
    "DeploymentWavesItem",
    "DryRunInput",
    "DryRunInputInput",
    "DryRunInputRequest",
    "DryRunInputRequestBody",
    "DryRunInputRequestEndpoint",
    "DryRunResult",
    "DryRunResultDecision",
    "DryRunResultInput",
    "DryRunResultPolicy",
    "Effect",
    "EffectiveLimits",
    "EffectiveLimitsSources",
    "EffectiveLimitsSourcesAdditionalProperty",
    "Error",
    "ErrorError",
    "ErrorErrorDetails",
    "EvidenceJob",
    "EvidenceJobList",
    "EvidenceJobParams",
    "EvidenceJobStatsType0",
    "EvidenceJobStatus",
    "EvidenceRequest",
    "EvidenceRequestComponentsItem",
    "ExportLogsEndpoint",
    "ExportLogsFormat",
    "FleetHealth",
    "FleetHealthTenantsItem",
    "FleetHealthTenantsItemStatus",
    "Gates",
    "GetOpenApiResponse200",
    "Health",
    "HealthServices",
    "HealthStatus",
    "HeartbeatBody",
    "HeartbeatResult",
    "HeartbeatResultCommandsItem",
    "InclusionProof",
    "IngestResult",
    "IngestResultDeferredItem",
    "IngestResultRejectedItem",
    "Instance",
    "InstanceList",
    "InstancePosture",
    "InstanceRegistration",
    "IntroduceKeyResponse200",
    "Key",
    "KeyCreated",
    "KeyInput",
    "KeyInputKind",
    "KeyIntroduction",
    "KeyIntroductionEvent",
    "KeyList",
    "KeyScope",
    "KeyScopeEndpointsItem",
    "KeyScopePermissionsItem",
    "ListAuditEventsActorKind",
    "ListAuditEventsDecision",
    "ListDeploymentsStatus",
    "ListLogsEndpoint",
    "ListWebhookDeliveriesStatus",
    "LivenessResponse200",
    "LogEntry",
    "LogEntryFallbackType0",
    "LogEntryMetadataType0",
    "LogEntryTokens",
    "LogKeys",
    "LogPage",
    "ModelCatalog",
    "ModelCatalogWorkspaceAliases",
    "ModelPrice",
    "OpaAgentList",
    "OpaAgentListAgentsItem",
    "OpaAgentListAgentsItemBundles",
    "OpaAgentListAgentsItemErrorsItem",
    "OpaAgentListAgentsItemLabels",
    "OpaDecisionLogBatchItem",
    "OpaDecisionLogBatchItemBundles",
    "OpaDecisionLogBatchItemLabels",
    "OpaIngestResult",
    "OpaStatusReport",
    "OpaStatusReportBundles",
    "OpaStatusReportLabels",
    "OpaStatusReportPlugins",
    "OpaStatusResult",
    "PlanLimits",
    "PlanList",
    "PlanListPlansItem",
    "Policy",
    "PolicyList",
    "PolicyVersion",
    "PolicyVersionList",
    "ReceiptBatch",
    "ReceiptBatchReceiptsItem",
    "RelayAttempt",
    "RelayEvent",
    "RelayInput",
    "RelayInputMetadata",
    "RelayInputPayload",
    "RelayResult",
    "RelaySettings",
    "RelaySettingsFallbacks",
    "RotateInput",
    "RotateResult",
    "Rotation",
    "RotationDetail",
    "Session",
    "SessionInput",
    "SigningKeyInput",
    "SigningKeyInputProof",
    "Sovereignty",
    "Upstream",
    "UpstreamEnvoyClusterOverrides",
    "UpstreamInput",
    "UpstreamInputEnvoyClusterOverrides",
    "UpstreamInputModels",
    "UpstreamInputProvider",
    "UpstreamList",
    "UpstreamModels",
    "Usage",
    "UsageRow",
    "VerifyReport",
    "VerifyReportChecksItem",
    "VerifyReportFailuresItem",
    "VerifyReportStats",
    "Webhook",
    "WebhookDelivery",
    "WebhookDeliveryPage",
    "WebhookDeliveryStatus",
    "WebhookInput",
    "WebhookList",
    "Workspace",
    "WorkspaceInput",
    "WorkspaceInputModelAliases",
    "WorkspaceLimits",
    "WorkspaceList",
    "WorkspaceModelAliases",
    "WorkspaceUpdate",
    "WorkspaceUpdateModelAliases",
)
