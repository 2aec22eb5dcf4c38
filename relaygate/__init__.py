"""relaygate: a policy enforcement point for LLM API traffic (Envoy + a Python policy service).

Subpackages, one job each (docs/architecture.md draws them):

- ``contract``: what the control plane and the data plane agree on (config documents, bundle
  format and signing, key format, Envoy-facing names, channel TLS, the on-disk file rule);
- ``decision``: request -> policy input -> decision -> holds -> response, with no transport in it;
- ``extproc``: the sidecar, the gRPC transport in front of ``decision`` plus settlement and sync;
- ``envoy``: the Envoy resource builders and Lua filters (ADS server and static bootstrap alike);
- ``controlplane``: the REST API, xDS and bundles for the fleet;
- ``evidence``: receipts, Merkle log, evidence bundles and their offline verifier;
- ``providersim``: a simulated LLM provider for tests and demos.
"""
