#!/bin/sh
# Regenerate the committed mesh examples (tests/system/test_mesh_manifests.py reads these lines,
# runs each and compares with the committed file). Run from the repository root.
set -eu
PY=${PYTHON:-.venv/bin/python}
$PY -m relaygate.envoy.mesh istio --config-dir config --out deploy/mesh/istio/demo.yaml
$PY -m relaygate.envoy.mesh istio --config-dir deploy/mesh/example-config --namespace apps --out deploy/mesh/istio/providers.yaml
$PY -m relaygate.envoy.mesh envoy-gateway --config-dir config --out deploy/mesh/envoy-gateway/demo.yaml
$PY -m relaygate.envoy.mesh envoy-gateway --config-dir deploy/mesh/example-config --namespace apps --gateway eg --gateway-namespace envoy-gateway-system --out deploy/mesh/envoy-gateway/providers.yaml
