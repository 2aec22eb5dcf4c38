"""Request handlers by operationId (see controlplane/openapi.py)."""
