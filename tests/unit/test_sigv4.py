"""relaygate/contract/sigv4.py against botocore's own SigV4 signer (the client and AWS's reference)."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from unittest import mock

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from relaygate.contract import sigv4

NOW = datetime(2026, 12, 3, 20, 30, 0, tzinfo=timezone.utc)
BODY = b'{"messages":[{"role":"user","content":[{"text":"hi"}]}]}'
PATH = "/v1/acme/bedrock/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"


def _botocore_signed(url: str, body: bytes, creds: Credentials, region: str, headers=None) -> AWSRequest:
    req = AWSRequest("POST", url, data=body, headers={"Content-Type": "application/json", **(headers or {})})
    with mock.patch("botocore.auth.get_current_datetime", return_value=NOW.replace(tzinfo=None)):
        SigV4Auth(creds, "bedrock", region).add_auth(req)
    return req


def _lower(req: AWSRequest) -> dict[str, str]:
    from urllib.parse import urlsplit

    h = {k.lower(): (v.decode() if isinstance(v, bytes) else v) for k, v in req.headers.items()}
    h["host"] = urlsplit(req.url).netloc
    return h


def test_our_upstream_signature_is_botocores():
    cred = sigv4.Credential("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    ours = dict(
        sigv4.sign(cred, "POST", "bedrock-runtime.eu-central-1.amazonaws.com", PATH[16:], BODY, "eu-central-1", now=NOW)
    )
    req = _botocore_signed(
        "https://bedrock-runtime.eu-central-1.amazonaws.com" + PATH[16:], BODY, Credentials("AKIDEXAMPLE", cred.secret),
        "eu-central-1", {"X-Amz-Content-SHA256": hashlib.sha256(BODY).hexdigest()},
    )  # fmt: skip
    assert ours["authorization"] == req.headers["Authorization"]
    assert ours["x-amz-date"] == "20261203T203000Z" == req.headers["X-Amz-Date"]
    assert ours["x-amz-content-sha256"] == hashlib.sha256(BODY).hexdigest()


def test_session_token_is_signed_like_botocore():
    cred = sigv4.Credential.parse("ASIAEXAMPLE:secret/key:the-session-token")
    assert cred is not None and cred.token == "the-session-token"
    ours = dict(sigv4.sign(cred, "POST", "127.0.0.1:9443", "/model/m/converse", BODY, "us-east-1", now=NOW))
    req = _botocore_signed(
        "https://127.0.0.1:9443/model/m/converse", BODY, Credentials("ASIAEXAMPLE", "secret/key", "the-session-token"),
        "us-east-1", {"X-Amz-Content-SHA256": hashlib.sha256(BODY).hexdigest()},
    )  # fmt: skip
    assert ours["authorization"] == req.headers["Authorization"]
    assert ours["x-amz-security-token"] == "the-session-token"
    assert "the-session-token" not in repr(cred) and "secret/key" not in repr(cred)


def test_a_botocore_client_signature_verifies_and_tampering_does_not():
    secret = sigv4.client_secret(b"pepper", "abcdefABCDEF", "00ff")
    akid = sigv4.access_key_id("abcdefABCDEF")
    req = _botocore_signed("https://127.0.0.1:8443" + PATH, BODY, Credentials(akid, secret), "eu-central-1")
    headers = _lower(req)
    auth = sigv4.parse_authorization(headers["authorization"])
    assert isinstance(auth, sigv4.ClientAuth)
    assert sigv4.key_id_of(auth.access_key) == "abcdefABCDEF"
    assert auth.signed == ("content-type", "host", "x-amz-date")
    assert sigv4.verify(auth, secret, "POST", PATH, "", headers, BODY)
    assert not sigv4.verify(auth, secret + "x", "POST", PATH, "", headers, BODY)  # wrong secret
    assert not sigv4.verify(auth, secret, "POST", PATH, "", headers, BODY + b" ")  # body swapped
    assert not sigv4.verify(auth, secret, "POST", PATH.replace("acme", "euro"), "", headers, BODY)  # other path
    assert not sigv4.verify(auth, secret, "POST", PATH, "", {**headers, "host": "evil:1"}, BODY)  # signed header
    assert sigv4.verify(auth, secret, "POST", PATH, "", {**headers, "x-unsigned": "1"}, BODY)  # unsigned: fine
    unsigned = {**headers, "x-amz-content-sha256": "UNSIGNED-PAYLOAD"}
    assert not sigv4.verify(auth, secret, "POST", PATH, "", unsigned, BODY)


def test_client_secret_depends_on_pepper_id_and_salt():
    base = sigv4.client_secret(b"p", "abcdefABCDEF", "s1")
    assert base != sigv4.client_secret(b"q", "abcdefABCDEF", "s1")
    assert base != sigv4.client_secret(b"p", "abcdefABCDEG", "s1")
    assert base != sigv4.client_secret(b"p", "abcdefABCDEF", "s2")
    assert "=" not in base and len(base) == 43


def test_malformed_authorization_headers_are_refused_with_a_reason():
    ok = "AWS4-HMAC-SHA256 Credential=RGKabcdefABCDEF/20261203/eu-central-1/bedrock/aws4_request, SignedHeaders=host;x-amz-date, Signature=" + "0" * 64  # fmt: skip
    assert isinstance(sigv4.parse_authorization(ok), sigv4.ClientAuth)
    assert "service" in sigv4.parse_authorization(ok.replace("/bedrock/", "/s3/"))
    assert "host" in sigv4.parse_authorization(ok.replace("host;", ""))
    assert "malformed" in sigv4.parse_authorization(ok[:-1])
    assert sigv4.key_id_of("AKIAIOSFODNN7EXAMPLE") is None
    assert sigv4.parse_amz_date("20261203T203000Z") == NOW.timestamp()
    assert sigv4.parse_amz_date("2026-12-03") is None


def test_canonical_query_sorts_and_encodes():
    assert sigv4.canonical_query("b=2&a=x y&a=1") == "a=1&a=x%20y&b=2"


def test_a_file_config_refuses_a_bedrock_upstream_without_an_aws_credential(tmp_path):
    import pytest
    import yaml

    from relaygate.contract import config

    (tmp_path / "secrets.yaml").write_text(yaml.safe_dump({"key_pepper": "p", "aws": "AKID:SECRET", "plain": "sk-x"}))
    up = {"name": "b", "provider": "bedrock", "address": "h:443", "tls": True, "region": "us-east-1", "jurisdiction": "us",
          "models": {"m": {}}}  # fmt: skip
    (tmp_path / "upstreams.yaml").write_text(yaml.safe_dump({"upstreams": [{**up, "credential": "aws"}]}))
    cfg = config.load(tmp_path)
    assert cfg.upstreams[0].base_path == "" and cfg.upstreams[0].authority == "h"
    (tmp_path / "upstreams.yaml").write_text(yaml.safe_dump({"upstreams": [{**up, "credential": "plain"}]}))
    with pytest.raises(config.ConfigError, match="ACCESS_KEY_ID:SECRET_ACCESS_KEY"):
        config.load(tmp_path)
