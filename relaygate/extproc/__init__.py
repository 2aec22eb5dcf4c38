"""relaygate data plane: the policy sidecar behind Envoy (ext_authz HTTP check and ext_proc transports, settlement, sync)."""
