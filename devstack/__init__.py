"""Running the gateway: Envoy bootstrap rendering and the local process stack."""
