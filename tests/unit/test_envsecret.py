"""Secrets as files (NAME_FILE), as containers hand them over: relaygate/contract/envsecret.py."""

import base64

import pytest

from relaygate.contract import config as config_mod
from relaygate.contract.envsecret import EnvSecretError, env_secret
from relaygate.controlplane import settings


def test_a_secret_comes_from_the_variable_or_from_the_file_it_names(tmp_path):
    f = tmp_path / "token"
    f.write_text("s3cret\n")
    assert env_secret("T", {"T": "direct"}) == "direct"
    assert env_secret("T", {"T_FILE": str(f)}) == "s3cret"  # the file's trailing newline is not the secret's
    assert env_secret("T", {}) is None


@pytest.mark.parametrize(
    "env, says",
    [
        ({"T": "a", "T_FILE": "/x"}, "not both"),
        ({"T_FILE": "/nonexistent/relaygate-secret"}, "cannot read"),
        ({"T_FILE": "EMPTY"}, "is empty"),
    ],
)
def test_a_contradictory_or_unreadable_secret_is_an_error_that_shows_no_value(tmp_path, env, says):
    empty = tmp_path / "empty"
    empty.write_text("\n")
    env = {k: (str(empty) if v == "EMPTY" else v) for k, v in env.items()}
    with pytest.raises(EnvSecretError, match=says):
        env_secret("T", env)


def test_the_control_plane_takes_its_tokens_master_key_and_database_url_from_files(tmp_path, monkeypatch):
    files = {
        "RELAYGATE_ADMIN_TOKEN": "rg_admin_from_file",
        "RELAYGATE_FLEET_TOKEN": "rg_fleet_from_file",
        "RELAYGATE_MASTER_KEY": base64.b64encode(b"k" * 32).decode(),
        "RELAYGATE_CP_DATABASE_URL": f"sqlite:///{tmp_path}/other.db",
    }
    for name, value in files.items():
        (tmp_path / name).write_text(value + "\n")
        monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv(name + "_FILE", str(tmp_path / name))
    s = settings.load(["--data-dir", str(tmp_path / "cp")])
    assert (s.admin_token, s.fleet_token) == ("rg_admin_from_file", "rg_fleet_from_file")
    assert s.master_key == b"k" * 32
    assert s.database_url == files["RELAYGATE_CP_DATABASE_URL"]
    # nothing was generated into the data directory: the files were the secrets
    assert not (tmp_path / "cp" / "admin-token").exists()
    monkeypatch.setenv("RELAYGATE_ADMIN_TOKEN", "also-set")
    with pytest.raises(settings.SettingsError, match="not both"):
        settings.load(["--data-dir", str(tmp_path / "cp")])


def test_a_provider_credential_and_the_pepper_come_from_files(tmp_path):
    cred = tmp_path / "openai"
    cred.write_text("sk-from-file\n")
    pepper = tmp_path / "pepper"
    pepper.write_text("pepper-from-file")
    docs, secrets = config_mod.read_documents("config")
    environ = {"RELAYGATE_KEY_PEPPER_FILE": str(pepper)}
    for u in docs["upstreams"]["upstreams"]:
        environ["RELAYGATE_SECRET_" + u["credential"].upper().replace("-", "_") + "_FILE"] = str(cred)
    cfg = config_mod.from_documents(docs, secrets, environ)
    assert cfg.pepper == b"pepper-from-file"
    assert {u.credential for u in cfg.upstreams} == {"sk-from-file"}
