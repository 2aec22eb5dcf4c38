"""Bundle signatures as a forger would try them: the sidecar accepts exactly one JWS, by the pinned
key, in that key's algorithm (ES256 for P-256 keys, the ones control planes now make; EdDSA for
an older Ed25519 key). The real OPA side is tests/system/test_opa_bundles.py."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
import gzip

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from relaygate.contract import bundle


def _build(signer, data=None):
    return bundle.build(
        modules={"relaygate/x.rego": "package relaygate.x\n"},
        data=data or {"relaygate": {"k": "v"}},
        config={"gateway": {}},
        secrets={"key_pepper": "p"},
        fleet_token="fleet",
        signer=signer,
    )


def _files(blob: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as tar:
        return {m.name.lstrip("/"): tar.extractfile(m).read() for m in tar if m.isfile()}


def _retar(files: dict[str, bytes]) -> bytes:
    return bundle._tar(files)


def test_a_new_key_is_p256_and_signs_es256():
    signer = bundle.BundleSigner.generate()
    assert signer.algorithm == "ES256" and signer.key_id.startswith("es256:")
    blob, rev = _build(signer)
    token = json.loads(_files(blob)[".signatures.json"])["signatures"][0]
    assert jwt.get_unverified_header(token)["alg"] == "ES256"
    b = bundle.read(blob, verify_key=bundle.load_verify_key(signer.public_pem()), fleet_token="fleet")
    assert b.revision == rev and b.secrets == {"key_pepper": "p"}


def test_an_older_ed25519_key_still_signs_and_verifies():
    signer = bundle.BundleSigner.of(Ed25519PrivateKey.generate())
    assert signer.algorithm == "EdDSA"
    blob, _ = _build(signer)
    assert bundle.read(blob, verify_key=bundle.load_verify_key(signer.public_pem()), fleet_token="fleet")


def test_other_key_types_are_refused():
    with pytest.raises(ValueError, match="P-256"):
        bundle.BundleSigner.of(ec.generate_private_key(ec.SECP384R1()))
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    from cryptography.hazmat.primitives import serialization

    pem = p384.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(ValueError, match="P-256"):
        bundle.load_verify_key(pem)


def _forge(blob: bytes, token: str | list[str]) -> bytes:
    files = _files(blob)
    files[".signatures.json"] = json.dumps({"signatures": token if isinstance(token, list) else [token]}).encode()
    return _retar(files)


def test_forged_signatures_are_refused():
    signer = bundle.BundleSigner.generate()
    pinned = bundle.load_verify_key(signer.public_pem())
    blob, _ = _build(signer)
    real = json.loads(_files(blob)[".signatures.json"])["signatures"][0]
    claims = jwt.decode(real, options={"verify_signature": False})
    # HS256 keyed with the public key (the classic algorithm confusion), and alg "none".
    hs = jwt.encode(claims, hashlib.sha256(signer.public_pem()).digest(), algorithm="HS256")
    head = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    other = bundle.BundleSigner.generate()
    ed = bundle.BundleSigner.of(Ed25519PrivateKey.generate())
    for token in (
        hs,
        f"{head}.{body}.",
        jwt.encode(claims, other.private_key, algorithm="ES256"),  # another P-256 key
        jwt.encode(claims, ed.private_key, algorithm="EdDSA"),  # the right claims, another algorithm
        [real, real],  # OPA takes exactly one signature; so does the sidecar
        [],
    ):
        with pytest.raises(bundle.BundleError):
            bundle.read(_forge(blob, token), verify_key=pinned, fleet_token="fleet")
    # The unchanged bundle still reads: the refusals are about the signatures alone.
    assert bundle.read(_forge(blob, real), verify_key=pinned, fleet_token="fleet")


def test_structured_files_are_written_as_opa_hashes_them():
    """data.json and .manifest: sorted keys, no whitespace, UTF-8 as is, U+2028/U+2029 escaped (Go's
    encoding), so the digest of the bytes is the digest OPA computes over the parsed document."""
    data = {"relaygate": {"zz": 1, "name": "Zürich <&> \u2028", "a": [1.5, None, True]}}
    blob, _ = _build(bundle.BundleSigner.generate(), data=data)
    raw = _files(blob)["data.json"]
    assert raw == '{"relaygate":{"a":[1.5,null,true],"name":"Zürich <&> \\u2028","zz":1}}'.encode()
    assert json.loads(raw) == data
    manifest = json.loads(_files(blob)[".manifest"])
    assert manifest["roots"] == ["relaygate"]
