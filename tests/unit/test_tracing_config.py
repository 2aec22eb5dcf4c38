"""Tracing settings: Envoy's OpenTelemetry tracer and its collector cluster as rendered, what a
gateway's node metadata may say of them, and where the sidecar's spans go. The traces
themselves are checked end to end in tests/system/test_traces.py."""

from __future__ import annotations

import subprocess

import pytest

from relaygate.contract import config as config_mod
from relaygate.envoy import config as envoy_config
from relaygate.envoy.config import TRACING_CLUSTER, Tracing
from relaygate.envoy.run import envoy_binary
from relaygate.extproc.tracing import endpoint_from
from tests.conftest import write_config


def _cluster(boot: dict) -> dict:
    return next(c for c in boot["static_resources"]["clusters"] if c["name"] == TRACING_CLUSTER)


def _hcm(boot: dict) -> dict:
    return boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    d = tmp_path_factory.mktemp("cfg")
    write_config(d)
    return config_mod.load_without_secrets(d)


def _render(cfg, tracing):
    return envoy_config.render(
        cfg, listen_port=8080, admin_port=9901, extproc=["unix:x.sock"], authz=["unix:a.sock"], tracing=tracing
    )


def test_without_an_endpoint_nothing_is_traced(cfg):
    boot = _render(cfg, None)
    assert "tracing" not in _hcm(boot)
    assert all(c["name"] != TRACING_CLUSTER for c in boot["static_resources"]["clusters"])


def test_the_tracer_and_its_collector_cluster(cfg):
    boot = _render(cfg, Tracing("otel-collector.observability:4317", sampling=12.5))
    t = _hcm(boot)["tracing"]
    assert t["random_sampling"] == {"value": 12.5}
    assert t["provider"]["typed_config"]["grpc_service"]["envoy_grpc"]["cluster_name"] == TRACING_CLUSTER
    c = _cluster(boot)
    assert c["type"] == "STRICT_DNS"  # a collector named by DNS
    assert "http2_protocol_options" in str(c["typed_extension_protocol_options"])  # OTLP/gRPC
    assert "transport_socket" not in c
    assert _cluster(_render(cfg, Tracing("10.1.2.3:4317")))["type"] == "STATIC"


def test_an_https_collector_is_verified_against_the_system_bundle_and_envoy_accepts_it(cfg, tmp_path):
    boot = _render(cfg, Tracing("https://collector.example:4317"))
    tls = _cluster(boot)["transport_socket"]["typed_config"]
    assert tls["sni"] == "collector.example"
    assert tls["common_tls_context"]["validation_context"]["trusted_ca"]["filename"] == envoy_config.SYSTEM_CA_BUNDLE
    path = envoy_config.write(tmp_path / "b.json", boot)
    out = subprocess.run([envoy_binary(), "--mode", "validate", "-c", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize(
    "endpoint", ["collector", "collector:", ":4317", "collector:99999", "http://collector:port", "https://:4317"]
)
def test_an_unusable_endpoint_is_refused(endpoint):
    with pytest.raises(ValueError, match="OTLP endpoint"):
        Tracing(endpoint)


@pytest.mark.parametrize("sampling", [-1, 100.5])
def test_sampling_is_a_percentage(sampling):
    with pytest.raises(ValueError, match="sampling"):
        Tracing("collector:4317", sampling)


def test_an_xds_gateway_says_its_sampling_in_its_metadata_and_holds_the_collector_itself():
    t = Tracing("collector:4317", sampling=5, service_name="gw-eu")
    boot = envoy_config.render_xds_bootstrap(
        node_id="gw", tenant="t", zone="z", listen="0.0.0.0:8080", admin_port=9901, ads_address="cp:18000", tracing=t
    )
    meta = boot["node"]["metadata"]["tracing"]
    assert meta == {"sampling": 5, "service_name": "gw-eu"}
    assert _cluster(boot)["type"] == "STRICT_DNS"
    back = Tracing.from_metadata(meta)
    assert (back.sampling, back.service_name, back.endpoint) == (5, "gw-eu", "")
    with pytest.raises(ValueError):
        Tracing.from_metadata({"sampling": "all of them"})
    with pytest.raises(ValueError):
        Tracing.from_metadata({"sampling": 1000})


def test_the_sidecar_traces_where_the_flag_or_the_sdk_variables_say():
    assert endpoint_from(None, {}) is None
    assert endpoint_from("c:4317", {"OTEL_EXPORTER_OTLP_ENDPOINT": "x:1"}) == "c:4317"
    assert endpoint_from(None, {"OTEL_EXPORTER_OTLP_ENDPOINT": "x:1"}) == "x:1"
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "x:1", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "t:2"}
    assert endpoint_from(None, env) == "t:2"
    assert endpoint_from(None, {**env, "OTEL_SDK_DISABLED": "true"}) is None
