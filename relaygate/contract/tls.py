"""TLS contexts shared by the control plane and the sidecar.

Server side: only the given certificate, TLS 1.2+, and, for mTLS, client
certificates verified against exactly the given CA file (never the system store:
a certificate some public CA issued must not pass as a fleet credential).
Client side: verification against a pinned CA file when one is given (else the
system store); never disabled.
"""

from __future__ import annotations

import ssl


def server_context(cert: str, key: str, client_ca: str | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    if client_ca:
        ctx.load_verify_locations(cafile=client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_context(ca: str | None = None, cert: str | None = None, key: str | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca) if ca else ssl.create_default_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx
