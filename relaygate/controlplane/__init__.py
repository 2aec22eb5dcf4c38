"""relaygate control plane: REST API (RelayOne /v1 and RelayPlane /api), storage, bundles, fleet."""
