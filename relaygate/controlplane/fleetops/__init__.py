"""The fleet-operations gRPC service: its .proto and the stubs protoc generated from it
(python -m devstack.clients generate; checked in make test). The service is relaygate/controlplane/fleet_ops.py."""
