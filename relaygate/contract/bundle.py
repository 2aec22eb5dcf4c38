"""Policy bundles: the signed tar.gz that carries a gateway's whole policy and configuration.

The layout follows OPA's bundle format, so a stock OPA agent can load and verify the same
bundle: Rego modules at their paths, ``data.json`` (policy data), a ``.manifest`` with the
revision, and ``.signatures.json`` holding exactly one JWS (OPA accepts no more) that lists every
file's SHA-256. The JWS is ES256 (ECDSA P-256), which OPA verifies; a control plane whose bundle
key predates that is Ed25519 and signs EdDSA, which sidecars verify and OPA does not (rotate the
key to serve OPA agents). ``data.json`` and ``.manifest`` are written in the form OPA hashes
structured files in (sorted keys, no whitespace, UTF-8), so one digest satisfies both verifiers.
relaygate adds two files OPA ignores: ``relaygate/gateway-config.json`` (workspaces, upstreams, key
hashes, budgets, limits; the documents of relaygate/contract/config.py) and
``relaygate/secrets.sealed`` (key pepper and provider credentials, AES-256-GCM
under a key derived from the fleet token, so a bundle at rest or in a proxy
log reveals no secret).

Every bundle names the version of the control-plane/data-plane contract it
speaks (``metadata.relaygate_contract`` in the signed ``.manifest``): what its
config documents, key formats and sealed secrets mean. A sidecar refuses a
bundle of a contract it does not implement, newer or too old, instead of
silently dropping fields it does not know (Envoy AI Gateway's filterapi
refuses the same case); it keeps serving its last good bundle and reports the
refusal in its posture. A bundle without the field predates versioning and is
contract 1.

Builds are deterministic (sorted entries, zero mtimes, a nonce derived from
the plaintext), so the revision, a digest of the contents, is the same for
the same state on every control-plane replica and after restarts; it is the
bundle's ETag.
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import io
import json
import tarfile
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from relaygate.evidence.signing import Signer, key_id_for

CONTENT_TYPE = "application/vnd.openpolicyagent.bundles"
CONFIG_PATH = "relaygate/gateway-config.json"
SECRETS_PATH = "relaygate/secrets.sealed"
MANIFEST_PATH = ".manifest"
SIGNATURES_PATH = ".signatures.json"
MAX_BUNDLE_BYTES = 64 * 1024 * 1024
MAX_FILES = 10_000
_SEAL_AAD = b"relaygate-bundle-secrets-v1"
# The contract this code implements, and the oldest one it still reads. Raise CONTRACT_VERSION
# when a bundle gains meaning an older sidecar would misread or drop; raise MIN_CONTRACT_VERSION
# when this code stops reading an older shape.
CONTRACT_VERSION = 1
MIN_CONTRACT_VERSION = 1
CONTRACT_KEY = "relaygate_contract"


class BundleError(ValueError):
    """A bundle is malformed, unsigned, signed by another key, or its secrets do not open."""


VerifyKey = Ed25519PublicKey | ec.EllipticCurvePublicKey
SigningKey = Ed25519PrivateKey | ec.EllipticCurvePrivateKey


def jws_algorithm(public_key: object) -> str:
    """The JWS algorithm of a bundle key: ES256 (P-256, what OPA verifies) or EdDSA (Ed25519)."""
    if isinstance(public_key, Ed25519PublicKey):
        return "EdDSA"
    if isinstance(public_key, ec.EllipticCurvePublicKey) and isinstance(public_key.curve, ec.SECP256R1):
        return "ES256"
    raise ValueError("a bundle key is ECDSA P-256 (ES256) or Ed25519 (EdDSA)")


def bundle_key_id(public_key: VerifyKey) -> str:
    if isinstance(public_key, Ed25519PublicKey):
        return key_id_for(public_key)
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "es256:" + hashlib.sha256(der).hexdigest()[:16]


def load_verify_key(pem: bytes) -> VerifyKey:
    """A pinned bundle-signing public key (PEM); ValueError when it is of another kind."""
    key = serialization.load_pem_public_key(pem)
    jws_algorithm(key)
    assert isinstance(key, (Ed25519PublicKey, ec.EllipticCurvePublicKey))
    return key


@dataclass(frozen=True)
class BundleSigner:
    """The control plane's bundle key (new ones are P-256; an older Ed25519 one keeps working)."""

    private_key: SigningKey
    key_id: str

    @classmethod
    def of(cls, key: object) -> "BundleSigner":
        if not isinstance(key, (Ed25519PrivateKey, ec.EllipticCurvePrivateKey)):
            raise ValueError("a bundle key is ECDSA P-256 (ES256) or Ed25519 (EdDSA)")
        jws_algorithm(key.public_key())
        return cls(key, bundle_key_id(key.public_key()))

    @classmethod
    def generate(cls) -> "BundleSigner":
        return cls.of(ec.generate_private_key(ec.SECP256R1()))

    @property
    def algorithm(self) -> str:
        return jws_algorithm(self.private_key.public_key())

    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def private_pem(self) -> str:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()


@dataclass(frozen=True)
class Bundle:
    revision: str
    modules: dict[str, str]  # path -> Rego source
    data: dict[str, Any]  # the data document (data.json)
    config: dict[str, Any]  # config documents by name (relaygate/contract/config.py)
    secrets: dict[str, Any]  # key_pepper and provider credentials, unsealed
    manifest: dict[str, Any]


def seal_key(fleet_token: str) -> bytes:
    """The AES key for a bundle's secrets, derived from the fleet token both sides hold."""
    return HKDF(algorithm=SHA256(), length=32, salt=b"relaygate", info=b"bundle secrets").derive(fleet_token.encode())


def seal(secrets: dict[str, Any], key: bytes) -> bytes:
    plain = json.dumps(secrets, sort_keys=True, separators=(",", ":")).encode()
    nonce = hmac.new(key, plain, hashlib.sha256).digest()[:12]  # deterministic: same secrets, same bytes
    return nonce + AESGCM(key).encrypt(nonce, plain, _SEAL_AAD)


def unseal(blob: bytes, key: bytes) -> dict[str, Any]:
    try:
        # What seal() wrote (a mapping): AES-GCM authenticates it under the fleet token's key.
        secrets: dict[str, Any] = json.loads(AESGCM(key).decrypt(blob[:12], blob[12:], _SEAL_AAD))
    except Exception:
        raise BundleError("bundle secrets do not open with this fleet token") from None
    return secrets


def _json(obj: object) -> bytes:
    """Sorted keys, no whitespace, UTF-8: byte for byte what OPA hashes a structured bundle file
    as (its canonical walk with Go's JSON encoding of each value, which escapes U+2028/U+2029), so
    the SHA-256 of these bytes is the digest both the sidecar and OPA check."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").encode()
    except UnicodeEncodeError:  # a lone surrogate: only ASCII escapes can carry it (OPA cannot)
        return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _revision(files: dict[str, bytes]) -> str:
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0" + hashlib.sha256(files[name]).hexdigest().encode() + b"\n")
    return h.hexdigest()[:32]


def _tar(files: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo("/" + name)
            info.size, info.mtime, info.mode = len(files[name]), 0, 0o644
            tar.addfile(info, io.BytesIO(files[name]))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def build(
    *,
    modules: dict[str, str],
    data: dict[str, Any],
    config: dict[str, Any],
    secrets: dict[str, Any],
    fleet_token: str,
    signer: Signer | BundleSigner,
    metadata: dict[str, Any] | None = None,
    contract: int | None = None,
) -> tuple[bytes, str]:
    """Return (tar.gz bytes, revision); the bundle declares ``contract`` (default: this code's)."""
    contract = CONTRACT_VERSION if contract is None else contract
    files = {path: src.encode() for path, src in modules.items()}
    files["data.json"] = _json(data)
    files[CONFIG_PATH] = _json(config)
    files[SECRETS_PATH] = seal(secrets, seal_key(fleet_token))
    revision = _revision(files)
    # Every top-level data key is a root (OPA refuses data outside the manifest's roots).
    roots = sorted({"relaygate", *(k for k in data if isinstance(k, str))})
    files[MANIFEST_PATH] = _json(
        {"revision": revision, "roots": roots, "metadata": {**(metadata or {}), CONTRACT_KEY: contract}}
    )
    listed = [
        {"name": name, "hash": hashlib.sha256(files[name]).hexdigest(), "algorithm": "SHA-256"}
        for name in sorted(files)
    ]
    token = jwt.encode(
        {"files": listed, "keyid": signer.key_id, "scope": "relaygate"},
        signer.private_key,
        algorithm=jws_algorithm(signer.private_key.public_key()),
        headers={"kid": signer.key_id},
    )
    files[SIGNATURES_PATH] = _json({"signatures": [token]})
    return _tar(files), revision


def _untar(blob: bytes) -> dict[str, bytes]:
    if len(blob) > MAX_BUNDLE_BYTES:
        raise BundleError(f"bundle larger than {MAX_BUNDLE_BYTES} bytes")
    try:
        raw = gzip.decompress(blob)
        if len(raw) > MAX_BUNDLE_BYTES:
            raise BundleError("bundle expands past the size limit")
        files: dict[str, bytes] = {}
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
            for info in tar:
                if not info.isfile():
                    continue
                name = info.name.lstrip("/")
                if ".." in name.split("/") or len(files) >= MAX_FILES:
                    raise BundleError(f"bundle entry not allowed: {info.name}")
                f = tar.extractfile(info)
                assert f is not None  # extractfile is None only for entries that are not files
                files[name] = f.read()
        return files
    except (OSError, EOFError, tarfile.TarError) as e:
        raise BundleError(f"not a tar.gz bundle: {e}") from None


def contract_of(manifest: object) -> int:
    """The contract version a (signed) manifest declares; 1 when it predates versioning."""
    meta = manifest.get("metadata") if isinstance(manifest, dict) else None
    version = meta.get(CONTRACT_KEY, 1) if isinstance(meta, dict) else 1
    if not isinstance(version, int) or isinstance(version, bool):
        raise BundleError(f"bundle declares contract version {version!r}, not an integer")
    return version


def check_contract(manifest: object) -> None:
    version = contract_of(manifest)
    if version > CONTRACT_VERSION:
        raise BundleError(
            f"bundle speaks contract version {version}; this sidecar implements "
            f"{MIN_CONTRACT_VERSION}..{CONTRACT_VERSION}: upgrade the sidecar (it keeps its last good bundle)"
        )
    if version < MIN_CONTRACT_VERSION:
        raise BundleError(
            f"bundle speaks contract version {version}; this sidecar implements "
            f"{MIN_CONTRACT_VERSION}..{CONTRACT_VERSION}: upgrade the control plane"
        )


def read(blob: bytes, *, verify_key: VerifyKey, fleet_token: str) -> Bundle:
    """Verify the signature and every file digest, then unpack. Raises BundleError."""
    files = _untar(blob)
    try:
        sigs = json.loads(files.pop(SIGNATURES_PATH))["signatures"]
        if len(sigs) != 1:
            raise ValueError(f"{len(sigs)} signatures; a bundle carries exactly one")
        # The pinned key's algorithm only: a token naming another (none, HS256 keyed with the
        # public key) is refused before any verification.
        claims = jwt.decode(sigs[0], verify_key, algorithms=[jws_algorithm(verify_key)])
    except KeyError:
        raise BundleError("bundle is not signed (.signatures.json missing)") from None
    except (jwt.PyJWTError, ValueError, IndexError, TypeError) as e:
        raise BundleError(
            f"bundle signature does not verify with the control plane's key {bundle_key_id(verify_key)}: {e}"
        ) from None
    listed = {f["name"]: f["hash"] for f in claims.get("files", [])}
    if set(listed) != set(files):
        extra = sorted(set(files) ^ set(listed))
        raise BundleError(f"bundle files differ from the signed list: {extra[:5]}")
    for name, content in files.items():
        if not hmac.compare_digest(hashlib.sha256(content).hexdigest(), listed[name]):
            raise BundleError(f"bundle file {name} does not match its signed digest")
    try:
        manifest = json.loads(files.pop(MANIFEST_PATH))
        check_contract(manifest)
        data = json.loads(files.pop("data.json", b"{}"))
        config = json.loads(files.pop(CONFIG_PATH))
        sealed = files.pop(SECRETS_PATH)
    except KeyError as e:
        raise BundleError(f"bundle lacks {e.args[0]}") from None
    except ValueError as e:
        raise BundleError(f"bundle holds invalid JSON: {e}") from None
    secrets = unseal(sealed, seal_key(fleet_token))
    modules = {name: content.decode() for name, content in files.items() if name.endswith(".rego")}
    return Bundle(manifest.get("revision", ""), modules, data, config, secrets, manifest)
