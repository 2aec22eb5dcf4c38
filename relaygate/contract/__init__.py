"""The contract between relaygate's control plane and its data plane (Envoy + sidecar).

What both sides must agree on byte for byte lives here, and only here, so the control plane can
build bundles, render Envoy resources and read receipts without importing the sidecar: config
documents (config.py), the signed bundle format and its ``CONTRACT_VERSION`` (bundle.py), key
format and scopes, header names and metadata namespaces, the receipt-id rule, the replies Envoy
makes itself, channel TLS and the owner-only file rule. Parsing takes its inputs as arguments
(the environment's overrides included); only the explicit loaders (``config.load``,
``tls``, ``private_files``) touch files.
"""
