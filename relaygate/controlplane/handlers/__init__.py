"""Request handlers by operationId (see relaygate/controlplane/openapi.py)."""
