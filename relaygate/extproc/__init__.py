"""relaygate data plane: the ext_proc policy enforcement service behind Envoy."""
