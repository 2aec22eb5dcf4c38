"""Grafana dashboards for relaygate, as code: ``python -m dashboards.generate`` writes
dashboards/*.json (committed; tests/system/test_dashboards.py regenerates them and diffs).

Built with grafana-foundation-sdk pinned to its Grafana 11 schema epoch (the test extra in
pyproject.toml). Every query reads only series docs/observability.md lists, plus Prometheus' own
``up`` and Envoy's ``envoy_*`` stats. Template variables: ``datasource`` (a Prometheus data source),
``job``/``instance`` (the policy sidecars), ``cp_job`` (the control plane), ``envoy_job`` (Envoy's
stats) and ``workspace`` where a series carries one. The job variables default to the job names
compose/prometheus.yml uses and list whatever jobs export the relaygate series, so a Prometheus
Operator install (jobs named after the Services) works too.

    python -m dashboards.generate                # writes dashboards/*.json
    python -m dashboards.generate --out DIR      # writes them elsewhere (the test diffs the two)
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

from grafana_foundation_sdk.builders import bargauge, common, stat, timeseries
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as common_m
from grafana_foundation_sdk.models import dashboard as dash_m

HERE = Path(__file__).resolve().parent

DATASOURCE = dash_m.DataSourceRef(type_val="prometheus", uid="${datasource}")

# Label matchers the queries share (Grafana substitutes the variables).
SIDECAR = 'job=~"$job", instance=~"$instance"'
CP = 'job=~"$cp_job"'
ENVOY = 'job=~"$envoy_job"'
RATE = "[$__rate_interval]"

# Jobs as compose/prometheus.yml names them: the variables' defaults.
POLICY_JOB, CP_JOB, ENVOY_JOB = "relaygate-policy", "relaygate-controlplane", "relaygate-envoy"


# -- template variables ---------------------------------------------------------------------------


def _datasource_var() -> dash.DatasourceVariable:
    return (
        dash.DatasourceVariable("datasource")
        .label("Data source")
        .description("The Prometheus that scrapes relaygate (jobs as in compose/prometheus.yml).")
        .type("prometheus")
    )


def _query_var(name: str, label: str, description: str, query: str, default: str, multi: bool = False):
    v = (
        dash.QueryVariable(name)
        .label(label)
        .description(description)
        .datasource(DATASOURCE)
        .query(query)
        .refresh(dash_m.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dash_m.VariableSort.ALPHABETICAL_ASC)
    )
    if multi:
        v = v.multi(True).include_all(True).all_value(".*")
        v = v.current(dash_m.VariableOption(selected=True, text="All", value="$__all"))
    else:
        v = v.current(dash_m.VariableOption(selected=True, text=default, value=default))
    return v


def _job_var():
    return _query_var(
        "job",
        "Sidecar job",
        "Prometheus job scraping the policy sidecars' /metrics (admin port :9464).",
        "label_values(relaygate_spool_pending, job)",
        POLICY_JOB,
    )


def _instance_var():
    return _query_var(
        "instance",
        "Sidecar",
        "Policy sidecars (scrape targets of the sidecar job).",
        'label_values(relaygate_spool_pending{job=~"$job"}, instance)',
        "",
        multi=True,
    )


def _workspace_var():
    return _query_var(
        "workspace",
        "Workspace",
        "Workspaces that had receipted calls (empty when the sidecars run with RELAYGATE_METRICS_WORKSPACE=0).",
        'label_values(relaygate_calls_total{job=~"$job"}, workspace)',
        "",
        multi=True,
    )


def _cp_job_var():
    return _query_var(
        "cp_job",
        "Control-plane job",
        "Prometheus job scraping the control plane's /metrics.",
        "label_values(relaygate_cp_xds_streams, job)",
        CP_JOB,
    )


def _envoy_job_var():
    return _query_var(
        "envoy_job",
        "Envoy job",
        "Prometheus job scraping Envoy's stats (relaygate-envoy's health port, /stats/prometheus).",
        "label_values(envoy_server_live, job)",
        ENVOY_JOB,
    )


# -- panels -----------------------------------------------------------------------------------------


@dataclass
class Q:
    expr: str
    legend: str = ""


@dataclass
class Row:
    title: str


@dataclass
class Panel:
    kind: str  # timeseries, stat, bargauge
    title: str
    description: str
    queries: list[Q]
    unit: str = "short"
    w: int = 12
    h: int = 8
    log_scale: bool = False
    stacked: bool = False
    max: float | None = None
    thresholds: list[tuple[float | None, str]] = field(default_factory=list)
    min: float | None = None


def _targets(queries: list[Q], instant: bool) -> list[prom.Dataquery]:
    out = []
    for i, q in enumerate(queries):
        t = prom.Dataquery().expr(q.expr).ref_id(chr(ord("A") + i)).datasource(DATASOURCE)
        if q.legend:
            t = t.legend_format(q.legend)
        out.append(t.instant() if instant else t.range())
    return out


def _thresholds(steps: list[tuple[float | None, str]]) -> dash.ThresholdsConfig:
    return (
        dash.ThresholdsConfig()
        .mode(dash_m.ThresholdsMode.ABSOLUTE)
        .steps([dash_m.Threshold(value=v, color=c) for v, c in steps])
    )


def _build(p: Panel, panel_id: int):
    if p.kind == "timeseries":
        b = (
            timeseries.Panel()
            .line_width(1)
            .fill_opacity(10)
            .show_points(common_m.VisibilityMode.NEVER)
            .legend(
                common.VizLegendOptions()
                .display_mode(common_m.LegendDisplayMode.LIST)
                .placement(common_m.LegendPlacement.BOTTOM)
                .show_legend(True)
            )
            .tooltip(
                common.VizTooltipOptions().mode(common_m.TooltipDisplayMode.MULTI).sort(common_m.SortOrder.DESCENDING)
            )
        )
        if p.log_scale:
            b = b.scale_distribution(common.ScaleDistributionConfig().type(common_m.ScaleDistribution.LOG).log(10))
        if p.stacked:
            b = b.stacking(common.StackingConfig().mode(common_m.StackingMode.NORMAL))
        if p.thresholds:
            b = b.thresholds_style(common.GraphThresholdsStyleConfig().mode(common_m.GraphThresholdsStyleMode.LINE))
        instant = False
    elif p.kind == "stat":
        b = (
            stat.Panel()
            .graph_mode(common_m.BigValueGraphMode.AREA)
            .color_mode(common_m.BigValueColorMode.VALUE)
            .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        )
        instant = False
    elif p.kind == "bargauge":
        b = (
            bargauge.Panel()
            .orientation(common_m.VizOrientation.HORIZONTAL)
            .display_mode(common_m.BarGaugeDisplayMode.GRADIENT)
            .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        )
        instant = True
    else:
        raise ValueError(p.kind)
    b = (
        b.id(panel_id)
        .title(p.title)
        .description(p.description)
        .datasource(DATASOURCE)
        .unit(p.unit)
        .span(p.w)
        .height(p.h)
        .targets(_targets(p.queries, instant))
    )
    if p.min is not None:
        b = b.min(p.min)
    if p.max is not None:
        b = b.max(p.max)
    b = b.thresholds(_thresholds(p.thresholds or [(None, "green")]))
    return b


def _dashboard(uid: str, title: str, description: str, variables: list, layout: list[Row | Panel]) -> dash_m.Dashboard:
    d = (
        dash.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["relaygate"])
        .editable()
        .timezone("browser")
        .tooltip(dash_m.DashboardCursorSync.CROSSHAIR)
        .time("now-6h", "now")
        .refresh("1m")
        .variables(variables)
        .annotation(
            dash.AnnotationQuery()
            .name("Annotations & Alerts")
            .datasource(dash_m.DataSourceRef(type_val="grafana", uid="-- Grafana --"))
            .enable(True)
            .hide(True)
            .icon_color("rgba(0, 211, 255, 1)")
            .type("dashboard")
            .built_in(1)
        )
        .link(
            dash.DashboardLink("relaygate")
            .type(dash_m.DashboardLinkType.DASHBOARDS)
            .tags(["relaygate"])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
    )
    panel_id = 0
    for item in layout:
        panel_id += 1
        if isinstance(item, Row):
            d = d.with_row(dash.Row(item.title).id(panel_id))
        else:
            d = d.with_panel(_build(item, panel_id))
    return d.build()


# -- the dashboards ---------------------------------------------------------------------------------


def _quantile(q: float, metric: str, sel: str, by: str = "") -> str:
    labels = f"le, {by}" if by else "le"
    return f"histogram_quantile({q}, sum by ({labels}) (rate({metric}_bucket{{{sel}}}{RATE})))"


def overview() -> dash_m.Dashboard:
    ws = f'{SIDECAR}, workspace=~"$workspace"'
    layout: list[Row | Panel] = [
        Row("Now"),
        Panel(
            "stat",
            "Calls per second",
            "Calls Envoy finished on the selected sidecars, every status (relaygate_call_outcomes_total).",
            [Q(f"sum(rate(relaygate_call_outcomes_total{{{SIDECAR}}}{RATE}))")],
            unit="reqps",
            w=4,
            h=4,
        ),
        Panel(
            "stat",
            "Denied share",
            'Share of policy decisions that denied the call (relaygate_decisions_total{decision="deny"} over all '
            "decisions).",
            [
                Q(
                    f'sum(rate(relaygate_decisions_total{{{SIDECAR}, decision="deny"}}{RATE}))'
                    f" / sum(rate(relaygate_decisions_total{{{SIDECAR}}}{RATE}))"
                )
            ],
            unit="percentunit",
            w=4,
            h=4,
            thresholds=[(None, "green"), (0.1, "orange"), (0.5, "red")],
        ),
        Panel(
            "stat",
            "Policy p99",
            "99th percentile of relaygate's own time deciding a call (relaygate_policy_evaluation_seconds): the "
            "gateway's overhead, without the provider's time.",
            [Q(_quantile(0.99, "relaygate_policy_evaluation_seconds", SIDECAR))],
            unit="s",
            w=4,
            h=4,
            thresholds=[(None, "green"), (0.005, "orange"), (0.025, "red")],
        ),
        Panel(
            "stat",
            "Spend in range",
            "USD settled in the dashboard's time range on the selected workspaces "
            "(relaygate_cost_usd_micros_total, USD millionths).",
            [Q(f"sum(increase(relaygate_cost_usd_micros_total{{{ws}}}[$__range])) / 1e6")],
            unit="currencyUSD",
            w=4,
            h=4,
        ),
        Panel(
            "stat",
            "Receipts pending",
            "Calls decided whose receipt is not signed yet (relaygate_spool_pending); they settle when Envoy's "
            "access log arrives.",
            [Q(f"sum(relaygate_spool_pending{{{SIDECAR}}})")],
            w=4,
            h=4,
            thresholds=[(None, "green"), (100, "orange"), (1000, "red")],
        ),
        Panel(
            "stat",
            "Receipts unshipped",
            "Receipts the control plane has not acknowledged yet, pending ones included (relaygate_receipts_unshipped).",
            [Q(f"sum(relaygate_receipts_unshipped{{{SIDECAR}}})")],
            w=4,
            h=4,
            thresholds=[(None, "green"), (1000, "orange"), (10000, "red")],
        ),
        Row("Traffic"),
        Panel(
            "timeseries",
            "Calls by status class",
            "Finished calls per second by the HTTP status class the client got (relaygate_call_outcomes_total), "
            "denials and Envoy's own answers included.",
            [Q(f"sum by (status_class) (rate(relaygate_call_outcomes_total{{{SIDECAR}}}{RATE}))", "{{status_class}}")],
            unit="reqps",
            stacked=True,
        ),
        Panel(
            "timeseries",
            "Denials by reason",
            'Calls denied per second by decision code (relaygate_decisions_total{decision="deny"}), counted as the '
            "decision is made.",
            [
                Q(
                    f'sum by (code) (rate(relaygate_decisions_total{{{SIDECAR}, decision="deny"}}{RATE}))',
                    "{{code}}",
                )
            ],
            unit="reqps",
            stacked=True,
        ),
        Panel(
            "timeseries",
            "Receipted calls by workspace and code",
            "Calls settled per second by workspace and decision code (relaygate_calls_total; 'ok' is allowed).",
            [Q(f"sum by (workspace, code) (rate(relaygate_calls_total{{{ws}}}{RATE}))", "{{workspace}} {{code}}")],
            unit="reqps",
        ),
        Panel(
            "timeseries",
            "Upstream responses by provider cluster",
            "Responses per second from each provider upstream by status class, as Envoy counted them "
            "(envoy_cluster_upstream_rq_xx on the upstream_* clusters).",
            [
                Q(
                    f"sum by (envoy_cluster_name, envoy_response_code_class) "
                    f'(rate(envoy_cluster_upstream_rq_xx{{{ENVOY}, envoy_cluster_name=~"upstream_.*"}}{RATE}))',
                    "{{envoy_cluster_name}} {{envoy_response_code_class}}xx",
                )
            ],
            unit="reqps",
        ),
        Row("Latency"),
        Panel(
            "timeseries",
            "Latency: policy vs provider",
            "p50 and p99 of relaygate's own decision time (relaygate_policy_evaluation_seconds) against forwarded "
            "calls' duration as Envoy saw it, first request byte to last response byte "
            "(gen_ai_server_request_duration_seconds: mostly the provider). Log scale.",
            [
                Q(_quantile(0.5, "relaygate_policy_evaluation_seconds", SIDECAR), "policy p50"),
                Q(_quantile(0.99, "relaygate_policy_evaluation_seconds", SIDECAR), "policy p99"),
                Q(_quantile(0.5, "gen_ai_server_request_duration_seconds", SIDECAR), "provider p50"),
                Q(_quantile(0.99, "gen_ai_server_request_duration_seconds", SIDECAR), "provider p99"),
            ],
            unit="s",
            log_scale=True,
        ),
        Panel(
            "timeseries",
            "Time to first token",
            "Streams: p50 and p95 from the call's start to the provider's first response byte, by requested model "
            "(gen_ai_server_time_to_first_token_seconds).",
            [
                Q(
                    _quantile(0.5, "gen_ai_server_time_to_first_token_seconds", SIDECAR, "gen_ai_request_model"),
                    "{{gen_ai_request_model}} p50",
                ),
                Q(
                    _quantile(0.95, "gen_ai_server_time_to_first_token_seconds", SIDECAR, "gen_ai_request_model"),
                    "{{gen_ai_request_model}} p95",
                ),
            ],
            unit="s",
        ),
        Panel(
            "timeseries",
            "Time per output token",
            "Streams: p50 and p95 of (duration - time to first token) / (output tokens - 1), by requested model "
            "(gen_ai_server_time_per_output_token_seconds).",
            [
                Q(
                    _quantile(0.5, "gen_ai_server_time_per_output_token_seconds", SIDECAR, "gen_ai_request_model"),
                    "{{gen_ai_request_model}} p50",
                ),
                Q(
                    _quantile(0.95, "gen_ai_server_time_per_output_token_seconds", SIDECAR, "gen_ai_request_model"),
                    "{{gen_ai_request_model}} p95",
                ),
            ],
            unit="s",
        ),
        Panel(
            "timeseries",
            "Call duration p99 by endpoint",
            "99th percentile of every call Envoy finished, denials included, by endpoint "
            "(relaygate_call_duration_seconds).",
            [Q(_quantile(0.99, "relaygate_call_duration_seconds", SIDECAR, "endpoint"), "{{endpoint}}")],
            unit="s",
        ),
        Row("Tokens and spend"),
        Panel(
            "timeseries",
            "Tokens by model",
            "Tokens per second by requested model and type (input, output), from the providers' responses "
            "(gen_ai_client_token_usage; calls whose usage was not seen are not counted).",
            [
                Q(
                    f"sum by (gen_ai_request_model, gen_ai_token_type) "
                    f"(rate(gen_ai_client_token_usage_sum{{{SIDECAR}}}{RATE}))",
                    "{{gen_ai_request_model}} {{gen_ai_token_type}}",
                )
            ],
            unit="short",
            stacked=True,
            w=8,
        ),
        Panel(
            "timeseries",
            "Tokens settled by workspace",
            "Tokens per second settled into budgets by workspace and direction (relaygate_tokens_total).",
            [
                Q(
                    f"sum by (workspace, direction) (rate(relaygate_tokens_total{{{ws}}}{RATE}))",
                    "{{workspace}} {{direction}}",
                )
            ],
            unit="short",
            stacked=True,
            w=8,
        ),
        Panel(
            "timeseries",
            "Spend by workspace",
            "USD per hour settled by workspace (rate of relaygate_cost_usd_micros_total, USD millionths, x 3600 / 1e6).",
            [
                Q(
                    f"sum by (workspace) (rate(relaygate_cost_usd_micros_total{{{ws}}}{RATE})) * 3600 / 1e6",
                    "{{workspace}}",
                )
            ],
            unit="currencyUSD",
            stacked=True,
            w=8,
        ),
        Row("Budgets"),
        Panel(
            "timeseries",
            "Budget burn-down",
            "Each budget's use in its current window over its cap (relaygate_budget_used / relaygate_budget_limit): "
            "1 is exhausted, and calls are then denied. A new window (day, month) starts again from 0. Sidecars "
            "sharing a Redis ledger show the same line each.",
            [
                Q(
                    f"relaygate_budget_used{{{ws}}} / on (job, instance, workspace, budget, unit) group_left "
                    f"relaygate_budget_limit{{{ws}}}",
                    "{{workspace}}/{{budget}} ({{unit}}, {{window}}) {{instance}}",
                )
            ],
            unit="percentunit",
            w=16,
            min=0,
            thresholds=[(None, "green"), (0.8, "orange"), (0.95, "red")],
        ),
        Panel(
            "bargauge",
            "Budgets used now",
            "The current window's use of each budget over its cap, highest first "
            "(relaygate_budget_used / relaygate_budget_limit, one bar per budget).",
            [
                Q(
                    "sort_desc(max by (workspace, budget) ("
                    f"relaygate_budget_used{{{ws}}} / on (job, instance, workspace, budget, unit) group_left "
                    f"relaygate_budget_limit{{{ws}}}))",
                    "{{workspace}}/{{budget}}",
                )
            ],
            unit="percentunit",
            w=8,
            min=0,
            max=1,
            thresholds=[(None, "green"), (0.8, "orange"), (0.95, "red")],
        ),
        Row("Spool"),
        Panel(
            "timeseries",
            "Spool backlog",
            "Calls decided whose receipt is not signed yet (relaygate_spool_pending) and receipts the control plane "
            "has not acknowledged (relaygate_receipts_unshipped), per sidecar.",
            [
                Q(f"relaygate_spool_pending{{{SIDECAR}}}", "pending {{instance}}"),
                Q(f"relaygate_receipts_unshipped{{{SIDECAR}}}", "unshipped {{instance}}"),
            ],
        ),
        Panel(
            "timeseries",
            "Oldest pending receipt",
            "Age of the oldest call whose receipt is not signed (relaygate_spool_oldest_pending_age_seconds; 0: "
            "none). It grows when Envoy's access log stops arriving; past --pending-grace the sweep finalizes such "
            "calls as incomplete.",
            [Q(f"relaygate_spool_oldest_pending_age_seconds{{{SIDECAR}}}", "{{instance}}")],
            unit="s",
            thresholds=[(None, "green"), (900, "orange"), (3900, "red")],
        ),
    ]
    return _dashboard(
        "relaygate-overview",
        "relaygate — gateway overview",
        "Traffic, denials, latency (relaygate's vs the provider's), tokens, spend, budgets and the receipt spool "
        "of relaygate's policy sidecars.",
        [_datasource_var(), _job_var(), _instance_var(), _workspace_var(), _envoy_job_var()],
        layout,
    )


def fleet() -> dash_m.Dashboard:
    layout: list[Row | Panel] = [
        Row("Fleet"),
        Panel(
            "stat",
            "Sidecars up",
            "Policy sidecars Prometheus scrapes successfully (up of the sidecar job). Envoy fails closed without its "
            "sidecar.",
            [Q('sum(up{job=~"$job"})')],
            w=6,
            h=4,
        ),
        Panel(
            "stat",
            "Envoys up",
            "Gateway Envoys whose stats Prometheus scrapes successfully (up of the Envoy job).",
            [Q(f"sum(up{{{ENVOY}}})")],
            w=6,
            h=4,
        ),
        Panel(
            "stat",
            "ADS streams",
            "Envoys connected to the control plane over ADS (relaygate_cp_xds_streams, summed over control-plane "
            "replicas).",
            [Q(f"sum(relaygate_cp_xds_streams{{{CP}}})")],
            w=6,
            h=4,
        ),
        Panel(
            "stat",
            "Control planes up",
            "Control-plane replicas Prometheus scrapes successfully (up of the control-plane job).",
            [Q(f"sum(up{{{CP}}})")],
            w=6,
            h=4,
            thresholds=[(None, "red"), (1, "green")],
        ),
        Panel(
            "stat",
            "Gateways live",
            "Registered gateway instances whose sidecar sent a heartbeat in the last 10 s, as the control plane "
            'sees them (relaygate_cp_fleet_instances{state="live"}).',
            [Q(f'max(relaygate_cp_fleet_instances{{{CP}, state="live"}})')],
            w=6,
            h=4,
        ),
        Panel(
            "stat",
            "Gateways stale",
            "Registered gateway instances without a heartbeat for over 10 s (relaygate_cp_fleet_instances"
            '{state="stale"}): down, cut off from the control plane, or retired (instances are never deleted).',
            [Q(f'max(relaygate_cp_fleet_instances{{{CP}, state="stale"}})')],
            w=6,
            h=4,
            thresholds=[(None, "green"), (1, "orange")],
        ),
        Panel(
            "stat",
            "Gateways refusing xDS",
            "Connected gateways whose Envoy rejected its latest configuration of some type and has accepted none "
            "since (relaygate_cp_xds_nacking_instances; alert RelaygateXdsConfigRejected).",
            [Q(f"sum(relaygate_cp_xds_nacking_instances{{{CP}}})")],
            w=6,
            h=4,
            thresholds=[(None, "green"), (1, "red")],
        ),
        Panel(
            "stat",
            "Deployments in progress",
            'Policy deployments rolling out or rolling back (relaygate_cp_deployments{status=~"running|rolling_back"}).',
            [Q(f'max(relaygate_cp_deployments{{{CP}, status=~"running|rolling_back"}})')],
            w=6,
            h=4,
        ),
        Panel(
            "timeseries",
            "Scrape targets up",
            "up per target of the sidecar, Envoy and control-plane jobs: 1 scraped, 0 down or unreachable.",
            [
                Q('up{job=~"$job"}', "sidecar {{instance}}"),
                Q(f"up{{{ENVOY}}}", "envoy {{instance}}"),
                Q(f"up{{{CP}}}", "control plane {{instance}}"),
            ],
            min=0,
            max=1,
        ),
        Panel(
            "timeseries",
            "Gateway instances by state",
            "Registered gateway instances, live or stale by the age of their last heartbeat "
            "(relaygate_cp_fleet_instances; every control-plane replica reports the whole fleet, so the highest).",
            [Q(f"max by (state) (relaygate_cp_fleet_instances{{{CP}}})", "{{state}}")],
            stacked=True,
        ),
        Row("Configuration (xDS)"),
        Panel(
            "timeseries",
            "ADS streams per control-plane replica",
            "Envoys connected over ADS, per control-plane replica (relaygate_cp_xds_streams).",
            [Q(f"relaygate_cp_xds_streams{{{CP}}}", "{{instance}}")],
            w=6,
        ),
        Panel(
            "timeseries",
            "xDS NACKs by type",
            "Configuration a gateway's Envoy rejected, by resource type (increase of relaygate_cp_xds_nacks_total). "
            "Envoy keeps its last good configuration; the instance's posture carries Envoy's message.",
            [Q(f"sum by (type) (increase(relaygate_cp_xds_nacks_total{{{CP}}}{RATE}))", "{{type}}")],
            w=6,
        ),
        Panel(
            "timeseries",
            "Gateways refusing their configuration",
            "Connected gateways whose Envoy NACKed the latest configuration of some type and has accepted none of "
            "that type since (relaygate_cp_xds_nacking_instances); a NACK a later version resolves leaves it.",
            [Q(f"relaygate_cp_xds_nacking_instances{{{CP}}}", "{{instance}}")],
            w=6,
            thresholds=[(None, "green"), (1, "red")],
        ),
        Panel(
            "timeseries",
            "Envoy: control-plane connection and rejected updates",
            "Per Envoy: connected to its xDS server (envoy_control_plane_connected_state, 1 connected) and "
            "listener, cluster and route updates it rejected (envoy_*_update_rejected), Envoy's side of a NACK.",
            [
                Q(f"envoy_control_plane_connected_state{{{ENVOY}}}", "connected {{instance}}"),
                Q(
                    f"sum by (instance) (increase(envoy_listener_manager_lds_update_rejected{{{ENVOY}}}{RATE}))"
                    f" + sum by (instance) (increase(envoy_cluster_manager_cds_update_rejected{{{ENVOY}}}{RATE}))"
                    f" + sum by (instance) (increase(envoy_http_rds_update_rejected{{{ENVOY}}}{RATE}))",
                    "rejected {{instance}}",
                ),
            ],
            w=6,
        ),
        Row("Policy bundles"),
        Panel(
            "timeseries",
            "Bundle builds and poll errors",
            "Tenant bundles the control plane built after a change, by result (relaygate_cp_bundle_builds_total: a "
            "failed build keeps serving the last good bundle), and sidecars' failed bundle polls by reason "
            "(relaygate_policy_bundle_errors_total: rejected, tls, unreachable).",
            [
                Q(f"sum by (result) (increase(relaygate_cp_bundle_builds_total{{{CP}}}{RATE}))", "build {{result}}"),
                Q(
                    f"sum by (reason) (increase(relaygate_policy_bundle_errors_total{{{SIDECAR}}}{RATE}))",
                    "poll error {{reason}}",
                ),
            ],
        ),
        Panel(
            "timeseries",
            "Bundle staleness",
            "Seconds since each sidecar's last successful bundle poll "
            "(time() - relaygate_policy_bundle_last_success_timestamp_seconds; polls run every ~20 s). Sidecars that "
            "never reached a control plane (timestamp 0) are left out.",
            [
                Q(
                    f"time() - relaygate_policy_bundle_last_success_timestamp_seconds{{{SIDECAR}}}"
                    f" and relaygate_policy_bundle_last_success_timestamp_seconds{{{SIDECAR}}} > 0",
                    "{{instance}}",
                )
            ],
            unit="s",
            thresholds=[(None, "green"), (300, "red")],
        ),
        Panel(
            "timeseries",
            "Sidecars per bundle revision",
            "How many sidecars enforce each bundle revision (relaygate_policy_bundle_info): after a change the fleet "
            "converges on one.",
            [Q(f"count by (revision) (relaygate_policy_bundle_info{{{SIDECAR}}})", "{{revision}}")],
            stacked=True,
        ),
        Panel(
            "timeseries",
            "Bundle swaps",
            "New bundles installed without a restart, per sidecar (increase of relaygate_policy_bundle_swaps_total).",
            [
                Q(
                    f"sum by (instance) (increase(relaygate_policy_bundle_swaps_total{{{SIDECAR}}}{RATE}))",
                    "{{instance}}",
                )
            ],
        ),
        Row("Rollouts"),
        Panel(
            "timeseries",
            "Deployments by status",
            "Policy deployments by status (relaygate_cp_deployments): running, rolling_back, and how the finished "
            "ones ended (succeeded, rolled_back, failed). Every control-plane replica reports all of them: the highest.",
            [Q(f"max by (status) (relaygate_cp_deployments{{{CP}}})", "{{status}}")],
            w=8,
        ),
        Panel(
            "timeseries",
            "Rollout waves",
            "Deployment waves applied, and passed or failed at their health gates (increase of "
            "relaygate_cp_deployment_waves_total); a failed wave rolls its deployment back "
            "(alert RelaygateDeploymentRolledBack).",
            [
                Q(
                    f"sum by (result) (increase(relaygate_cp_deployment_waves_total{{{CP}}}{RATE}))",
                    "{{result}}",
                )
            ],
            w=8,
        ),
        Panel(
            "timeseries",
            "Deployments finished",
            "Deployments that ended, by how (increase of relaygate_cp_deployments_finished_total): succeeded, "
            "rolled_back (a gate failed or an operator asked), failed (the rollout errored: nothing rolled back).",
            [
                Q(
                    f"sum by (status) (increase(relaygate_cp_deployments_finished_total{{{CP}}}{RATE}))",
                    "{{status}}",
                )
            ],
            w=8,
        ),
        Row("Evidence emission"),
        Panel(
            "timeseries",
            "Receipts acknowledged per receipt signed",
            "Per sidecar, the receipts the control plane acknowledged per receipt the sidecar signed "
            "(relaygate_receipts_shipped_total / relaygate_receipts_total). About 1 when every receipt reaches the "
            "audit log; alert RelaygateEvidenceEmissionLow below 0.8 over 30 minutes.",
            [
                Q(
                    f"sum by (instance) (rate(relaygate_receipts_shipped_total{{{SIDECAR}}}{RATE}))"
                    f" / sum by (instance) (rate(relaygate_receipts_total{{{SIDECAR}}}{RATE}))",
                    "{{instance}}",
                )
            ],
            unit="percentunit",
            min=0,
            thresholds=[(None, "red"), (0.8, "green")],
        ),
        Panel(
            "timeseries",
            "Calls decided, receipts signed and ingested",
            "Across the fleet, per second: policy decisions (relaygate_decisions_total), receipts the sidecars signed "
            "(relaygate_receipts_total) and receipts the control plane accepted (relaygate_cp_receipts_ingested_total"
            '{result="accepted"}). Unauthenticated junk past the sampling limits shares one summary receipt a second.',
            [
                Q(f"sum(rate(relaygate_decisions_total{{{SIDECAR}}}{RATE}))", "decided"),
                Q(f"sum(rate(relaygate_receipts_total{{{SIDECAR}}}{RATE}))", "signed"),
                Q(
                    f'sum(rate(relaygate_cp_receipts_ingested_total{{{CP}, result="accepted"}}{RATE}))',
                    "accepted by the control plane",
                ),
            ],
            unit="reqps",
        ),
        Row("Control-plane API"),
        Panel(
            "timeseries",
            "API requests by operation",
            "Control-plane API requests per second by OpenAPI operation and status (relaygate_cp_requests_total).",
            [
                Q(
                    f"sum by (operation, status) (rate(relaygate_cp_requests_total{{{CP}}}{RATE}))",
                    "{{operation}} {{status}}",
                )
            ],
            unit="reqps",
        ),
        Panel(
            "timeseries",
            "API latency by operation",
            "p50 and p99 of control-plane API latency by operation (relaygate_cp_request_seconds).",
            [
                Q(_quantile(0.5, "relaygate_cp_request_seconds", CP, "operation"), "{{operation}} p50"),
                Q(_quantile(0.99, "relaygate_cp_request_seconds", CP, "operation"), "{{operation}} p99"),
            ],
            unit="s",
        ),
        Panel(
            "timeseries",
            "API 5xx share by operation",
            'Share of each operation\'s requests answered 5xx (relaygate_cp_requests_total{status=~"5.."}).',
            [
                Q(
                    f'sum by (operation) (rate(relaygate_cp_requests_total{{{CP}, status=~"5.."}}{RATE}))'
                    f" / sum by (operation) (rate(relaygate_cp_requests_total{{{CP}}}{RATE}))",
                    "{{operation}}",
                )
            ],
            unit="percentunit",
            w=24,
            thresholds=[(None, "green"), (0.05, "red")],
        ),
    ]
    return _dashboard(
        "relaygate-fleet",
        "relaygate — fleet",
        "Sidecars, Envoys and the control plane: who is up, gateways live and stale, xDS configuration and NACKs, "
        "policy bundle builds, polls and staleness, rollouts, evidence emission, and the control-plane API.",
        [_datasource_var(), _job_var(), _instance_var(), _cp_job_var(), _envoy_job_var()],
        layout,
    )


def evidence() -> dash_m.Dashboard:
    layout: list[Row | Panel] = [
        Row("Now"),
        Panel(
            "stat",
            "Evidence emission ratio",
            "Receipts the control plane accepted per call the sidecars finished, over the dashboard's range "
            '(relaygate_cp_receipts_ingested_total{result="accepted"} / relaygate_call_outcomes_total). About 1 '
            "when every call's receipt reaches the log; lower when receipts lag or are lost, or when unauthenticated "
            "junk is summarized into one receipt per window (relaygate_receipts_sampled_total).",
            [
                Q(
                    f'sum(increase(relaygate_cp_receipts_ingested_total{{{CP}, result="accepted"}}[$__range]))'
                    ' / sum(increase(relaygate_call_outcomes_total{job=~"$job"}[$__range]))'
                )
            ],
            unit="percentunit",
            w=6,
            h=4,
            thresholds=[(None, "red"), (0.95, "orange"), (0.99, "green")],
        ),
        Panel(
            "stat",
            "Merkle tree size",
            "Leaves of the control plane's Merkle log (relaygate_cp_merkle_tree_size).",
            [Q(f"max(relaygate_cp_merkle_tree_size{{{CP}}})")],
            w=6,
            h=4,
        ),
        Panel(
            "stat",
            "Checkpoint age",
            "Time since the newest signed tree head (time() - relaygate_cp_checkpoint_timestamp_seconds).",
            [
                Q(
                    f"time() - max(relaygate_cp_checkpoint_timestamp_seconds{{{CP}}})"
                    f" and max(relaygate_cp_checkpoint_timestamp_seconds{{{CP}}}) > 0"
                )
            ],
            unit="s",
            w=6,
            h=4,
            thresholds=[(None, "green"), (600, "orange"), (3600, "red")],
        ),
        Panel(
            "stat",
            "Receipts unshipped",
            "Receipts the control plane has not acknowledged yet, pending ones included (relaygate_receipts_unshipped).",
            [Q(f"sum(relaygate_receipts_unshipped{{{SIDECAR}}})")],
            w=6,
            h=4,
            thresholds=[(None, "green"), (1000, "orange"), (10000, "red")],
        ),
        Panel(
            "stat",
            "Ingestion lag p99",
            "99th percentile, over the dashboard's range, of the time from a receipt's signing to the control plane "
            "storing it (relaygate_cp_receipt_ingest_lag_seconds).",
            [
                Q(
                    "histogram_quantile(0.99, sum by (le) "
                    f"(increase(relaygate_cp_receipt_ingest_lag_seconds_bucket{{{CP}}}[$__range])))"
                )
            ],
            unit="s",
            w=6,
            h=4,
            thresholds=[(None, "green"), (60, "orange"), (900, "red")],
        ),
        Panel(
            "stat",
            "Leaves awaiting a checkpoint",
            "Leaves of the Merkle log no signed tree head covers yet (relaygate_cp_merkle_tree_size - "
            "relaygate_cp_checkpoint_tree_size); they wait for the next checkpoint (alert RelaygateCheckpointStale).",
            [Q(f"max(relaygate_cp_merkle_tree_size{{{CP}}}) - max(relaygate_cp_checkpoint_tree_size{{{CP}}})")],
            w=6,
            h=4,
        ),
        Panel(
            "stat",
            "Log writers",
            "Control-plane replicas that are the Merkle log's writer (sum of relaygate_cp_log_writer): 1 is right; "
            "0 means receipts queue unlogged and no tree head is signed (alert RelaygateNoLogWriter).",
            [Q(f"sum(relaygate_cp_log_writer{{{CP}}})")],
            w=6,
            h=4,
            thresholds=[(None, "red"), (1, "green"), (2, "red")],
        ),
        Panel(
            "stat",
            "Receipts waiting for the log writer",
            "Receipts stored by replicas that are not the writer, not yet leaves of the Merkle log "
            "(relaygate_cp_merkle_queue); it drains within a second while a writer runs.",
            [Q(f"max(relaygate_cp_merkle_queue{{{CP}}})")],
            w=6,
            h=4,
            thresholds=[(None, "green"), (1000, "orange"), (100000, "red")],
        ),
        Panel(
            "stat",
            "Evidence jobs failed in range",
            'Evidence bundle jobs that failed in the dashboard\'s range (relaygate_cp_evidence_jobs_total{result="failed"}).',
            [Q(f'sum(increase(relaygate_cp_evidence_jobs_total{{{CP}, result="failed"}}[$__range]))')],
            w=6,
            h=4,
            thresholds=[(None, "green"), (1, "red")],
        ),
        Panel(
            "stat",
            "Evidence jobs active",
            "Evidence bundle jobs queued or being assembled (relaygate_cp_evidence_jobs_active).",
            [Q(f"sum(relaygate_cp_evidence_jobs_active{{{CP}}})")],
            w=6,
            h=4,
        ),
        Row("Signing and shipping"),
        Panel(
            "timeseries",
            "Receipts signed by status",
            "Receipts the sidecars signed per second (relaygate_receipts_total): complete, or incomplete when the "
            "call's end was not seen (swept after --pending-grace, or a sidecar restart).",
            [Q(f"sum by (status) (rate(relaygate_receipts_total{{{SIDECAR}}}{RATE}))", "{{status}}")],
            unit="reqps",
            stacked=True,
        ),
        Panel(
            "timeseries",
            "Receipts shipped",
            "Receipts the control plane acknowledged per second, per sidecar (relaygate_receipts_shipped_total).",
            [Q(f"sum by (instance) (rate(relaygate_receipts_shipped_total{{{SIDECAR}}}{RATE}))", "{{instance}}")],
            unit="reqps",
        ),
        Panel(
            "timeseries",
            "Unshipped receipts",
            "Receipts waiting for the control plane, per sidecar (relaygate_receipts_unshipped). Nothing is lost: "
            "the spool ships them at least once when ingestion works again.",
            [Q(f"relaygate_receipts_unshipped{{{SIDECAR}}}", "{{instance}}")],
        ),
        Panel(
            "timeseries",
            "Calls without a receipt of ours",
            "Access-log entries no receipt matches (relaygate_access_log_unmatched_total: Envoy answered with no "
            "decision, e.g. failing closed while the policy service was down) and unauthenticated junk counted in a "
            "window's summary receipt (relaygate_receipts_sampled_total, by reason).",
            [
                Q(
                    f"sum by (instance) (rate(relaygate_access_log_unmatched_total{{{SIDECAR}}}{RATE}))",
                    "unmatched {{instance}}",
                ),
                Q(
                    f"sum by (reason) (rate(relaygate_receipts_sampled_total{{{SIDECAR}}}{RATE}))",
                    "sampled {{reason}}",
                ),
            ],
            unit="reqps",
        ),
        Row("Ingestion and the log"),
        Panel(
            "timeseries",
            "Ingestion by result",
            "Receipts sidecars shipped, per second by result (relaygate_cp_receipts_ingested_total): accepted, "
            "duplicate (shipped again), rejected, deferred (a key not registered yet: sent again later).",
            [Q(f"sum by (result) (rate(relaygate_cp_receipts_ingested_total{{{CP}}}{RATE}))", "{{result}}")],
            unit="reqps",
            stacked=True,
        ),
        Panel(
            "timeseries",
            "Ingestion lag",
            "p50 and p99 of the time from a receipt's signing (its issued_at, the sidecar's clock) to the control "
            "plane storing it (relaygate_cp_receipt_ingest_lag_seconds): shipping batches, the control plane's "
            "backlog, and receipts held while it was unreachable.",
            [
                Q(_quantile(0.5, "relaygate_cp_receipt_ingest_lag_seconds", CP), "p50"),
                Q(_quantile(0.99, "relaygate_cp_receipt_ingest_lag_seconds", CP), "p99"),
            ],
            unit="s",
            log_scale=True,
        ),
        Panel(
            "timeseries",
            "Evidence emission ratio over time",
            "Receipts accepted by the control plane per call the sidecars finished "
            '(rate of relaygate_cp_receipts_ingested_total{result="accepted"} / rate of '
            "relaygate_call_outcomes_total), and receipts signed per finished call (relaygate_receipts_total). "
            "Shipping lag makes the first dip and catch up; a lasting gap is missing evidence.",
            [
                Q(
                    f'sum(rate(relaygate_cp_receipts_ingested_total{{{CP}, result="accepted"}}{RATE}))'
                    f' / sum(rate(relaygate_call_outcomes_total{{job=~"$job"}}{RATE}))',
                    "accepted / calls",
                ),
                Q(
                    f"sum(rate(relaygate_receipts_total{{{SIDECAR}}}{RATE}))"
                    f" / sum(rate(relaygate_call_outcomes_total{{{SIDECAR}}}{RATE}))",
                    "signed / calls",
                ),
            ],
            unit="percentunit",
            min=0,
            thresholds=[(None, "red"), (0.95, "green")],
        ),
        Panel(
            "timeseries",
            "Merkle tree size over time",
            "Leaves of the Merkle log (relaygate_cp_merkle_tree_size): it only grows.",
            [Q(f"relaygate_cp_merkle_tree_size{{{CP}}}", "{{instance}}")],
        ),
        Panel(
            "timeseries",
            "Checkpoint age over time",
            "Seconds since the newest signed tree head (time() - relaygate_cp_checkpoint_timestamp_seconds); left "
            "out while none was made yet (0).",
            [
                Q(
                    f"time() - relaygate_cp_checkpoint_timestamp_seconds{{{CP}}}"
                    f" and relaygate_cp_checkpoint_timestamp_seconds{{{CP}}} > 0",
                    "{{instance}}",
                )
            ],
            unit="s",
            thresholds=[(None, "green"), (600, "orange"), (3600, "red")],
        ),
        Panel(
            "timeseries",
            "Leaves awaiting a checkpoint over time",
            "Leaves no signed tree head covers yet, per control plane (relaygate_cp_merkle_tree_size - "
            "relaygate_cp_checkpoint_tree_size): back to 0 at each checkpoint.",
            [
                Q(
                    f"relaygate_cp_merkle_tree_size{{{CP}}} - relaygate_cp_checkpoint_tree_size{{{CP}}}",
                    "{{instance}}",
                )
            ],
        ),
        Row("Evidence bundles"),
        Panel(
            "timeseries",
            "Evidence jobs by result",
            "Evidence bundle jobs that ended, by result (increase of relaygate_cp_evidence_jobs_total; alert "
            "RelaygateEvidenceJobsFailing).",
            [Q(f"sum by (result) (increase(relaygate_cp_evidence_jobs_total{{{CP}}}{RATE}))", "{{result}}")],
            w=8,
        ),
        Panel(
            "timeseries",
            "Evidence job duration",
            "p50 and p99 of the time to assemble an evidence bundle (relaygate_cp_evidence_job_seconds).",
            [
                Q(_quantile(0.5, "relaygate_cp_evidence_job_seconds", CP), "p50"),
                Q(_quantile(0.99, "relaygate_cp_evidence_job_seconds", CP), "p99"),
            ],
            unit="s",
            w=8,
        ),
        Panel(
            "timeseries",
            "Evidence jobs active over time",
            "Evidence bundle jobs queued or being assembled, per control plane (relaygate_cp_evidence_jobs_active).",
            [Q(f"relaygate_cp_evidence_jobs_active{{{CP}}}", "{{instance}}")],
            w=8,
        ),
    ]
    return _dashboard(
        "relaygate-evidence",
        "relaygate — evidence",
        "Receipts from signing to the control plane's Merkle log: signed, shipped, ingested and how late, the "
        "emission ratio, the log's size and its newest checkpoint, and evidence bundle jobs.",
        [_datasource_var(), _job_var(), _instance_var(), _cp_job_var()],
        layout,
    )


DASHBOARDS = {"overview": overview, "fleet": fleet, "evidence": evidence}


def render(d: dash_m.Dashboard) -> str:
    return json.dumps(d, cls=JSONEncoder, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, make in DASHBOARDS.items():
        path = out / f"{name}.json"
        path.write_text(render(make()), encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=HERE, help="directory to write the dashboards' JSON into")
    for path in write(ap.parse_args(argv).out):
        print(path)


if __name__ == "__main__":
    main()
