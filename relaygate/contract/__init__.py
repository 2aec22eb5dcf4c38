"""The contract between relaygate's control plane and its data plane (Envoy + sidecar).

What both sides must agree on byte for byte lives here, and only here, so the
control plane can render Envoy resources and read receipts without importing
the sidecar's servicer: header names, metadata namespaces, the receipt-id
rule, and the replies Envoy makes itself. Nothing in this package reads the
environment or does I/O. (Bundle format and its ``CONTRACT_VERSION``:
``relaygate/contract/bundle.py``, moving here with the config documents.)
"""
