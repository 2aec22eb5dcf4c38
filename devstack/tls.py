"""Local certificates for `make run` and the tests: one CA, a server certificate, a fleet client certificate.

`make run` serves the gateway, the control plane and xDS over TLS by default, so a
newcomer runs (and the tests exercise) the encrypted path that ships. This module
makes what that needs with `cryptography`: a private CA, a server certificate for
127.0.0.1 and localhost (the SANs clients check), and a client certificate that
sidecars and gateways present to the control plane's fleet port and xDS server (mTLS).

Keys are ECDSA P-256 (fast to make, supported by Envoy/BoringSSL, gRPC and OpenSSL).
Every file is written 0600 in a 0700 directory. An existing set is reused while it is
valid: each certificate signed by the CA, matching its key, covering the hosts, and
not expiring within a day; anything else is replaced as a whole.

    python -m stack.tls --dir .run/tls          # make (or reuse) a set; prints the paths
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

HOSTS = ("127.0.0.1", "localhost")
CA_DAYS, LEAF_DAYS = 365, 90
MIN_REMAINING = dt.timedelta(days=1)
FLEET_CLIENT_CN = "relaygate-fleet"


@dataclass(frozen=True)
class Pki:
    """Paths of one CA and the certificates it issued (PEM)."""

    dir: Path

    @property
    def ca(self) -> Path:
        return self.dir / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.dir / "ca-key.pem"

    @property
    def server_cert(self) -> Path:
        return self.dir / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.dir / "server-key.pem"

    @property
    def client_cert(self) -> Path:
        return self.dir / "client.pem"

    @property
    def client_key(self) -> Path:
        return self.dir / "client-key.pem"


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _key_pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _san(hosts) -> x509.SubjectAlternativeName:
    names = []
    for h in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            names.append(x509.DNSName(h))
    return x509.SubjectAlternativeName(names)


def _builder(subject: str, issuer: x509.Name, public_key, days: int) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
    )


def _issue(ca_cert, ca_key, cn: str, *, hosts=(), client: bool = False):
    key = ec.generate_private_key(ec.SECP256R1())
    b = _builder(cn, ca_cert.subject, key.public_key(), LEAF_DAYS)
    b = b.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    b = b.add_extension(
        x509.KeyUsage(
            digital_signature=True,
            key_encipherment=False,
            content_commitment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=False,
            crl_sign=False,
            encipher_only=False,
            decipher_only=False,
        ),
        critical=True,
    )
    b = b.add_extension(
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]),
        critical=False,
    )
    b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    if hosts:
        b = b.add_extension(_san(hosts), critical=False)
    return b.sign(ca_key, hashes.SHA256()), key


def _valid(pki: Pki, hosts) -> bool:
    """True when every file is there and the set is one a client would accept for ``hosts``."""
    try:
        ca = x509.load_pem_x509_certificate(pki.ca.read_bytes())
        ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), None)
        if ca_key.public_key().public_numbers() != ca.public_key().public_numbers():
            return False
        if not ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            return False
        horizon = dt.datetime.now(dt.timezone.utc) + MIN_REMAINING
        for cert_path, key_path in ((pki.server_cert, pki.server_key), (pki.client_cert, pki.client_key)):
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            key = serialization.load_pem_private_key(key_path.read_bytes(), None)
            cert.verify_directly_issued_by(ca)
            if key.public_key().public_numbers() != cert.public_key().public_numbers():
                return False
            if cert.not_valid_after_utc < horizon:
                return False
        if ca.not_valid_after_utc < horizon:
            return False
        server = x509.load_pem_x509_certificate(pki.server_cert.read_bytes())
        want = set(_san(hosts))
        have = set(server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
        return want <= have
    except (OSError, ValueError, TypeError, x509.ExtensionNotFound, Exception):
        return False


def ensure(directory: Path, hosts=HOSTS, name: str = "relaygate local CA") -> Pki:
    """The certificate set in ``directory``: reused while valid, else made afresh (all files 0600)."""
    pki = Pki(Path(directory))
    pki.dir.mkdir(parents=True, exist_ok=True)
    os.chmod(pki.dir, 0o700)
    if _valid(pki, hosts):
        return pki
    ca_key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    ca = (
        _builder(name, subject, ca_key.public_key(), CA_DAYS)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=False,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server, server_key = _issue(ca, ca_key, hosts[0], hosts=hosts)
    client, client_key = _issue(ca, ca_key, FLEET_CLIENT_CN, client=True)
    pem = serialization.Encoding.PEM
    _write(pki.ca_key, _key_pem(ca_key))
    _write(pki.server_key, _key_pem(server_key))
    _write(pki.client_key, _key_pem(client_key))
    _write(pki.server_cert, server.public_bytes(pem))
    _write(pki.client_cert, client.public_bytes(pem))
    _write(pki.ca, ca.public_bytes(pem))  # last: its presence marks a complete set
    return pki


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m stack.tls", description=ensure.__doc__)
    p.add_argument("--dir", default=".run/tls", help="where the set lives (default .run/tls)")
    p.add_argument("--host", action="append", help="server SAN (repeatable; default 127.0.0.1 and localhost)")
    a = p.parse_args(argv)
    pki = ensure(Path(a.dir), tuple(a.host) if a.host else HOSTS)
    for label in ("ca", "server_cert", "server_key", "client_cert", "client_key"):
        print(f"{label:12} {getattr(pki, label)}")


if __name__ == "__main__":
    main()
