"""Code shared by the data plane and the control plane: receipt format and signing."""
