"""System tier: real Envoy, real gRPC, the control plane, PostgreSQL and Redis on loopback."""
