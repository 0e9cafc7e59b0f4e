"""API keys: created once and stored hashed, resolved to a principal, role and groups; a
broken keys file is refused with a message naming the problem; ``ravel keys`` commands."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.errors import ConfigurationError
from pipeline.web import keys
from pipeline.web.keys import Role


def test_a_created_key_is_stored_only_as_its_sha256_and_resolves_to_its_caller(
    tmp_path: Path,
) -> None:
    path = tmp_path / "keys.toml"
    secret, entry = keys.create(
        path,
        "alice-laptop",
        principal="alice",
        roles=["approver"],
        groups=["finance", "group:legal"],
    )
    assert secret.startswith("rvl_") and len(secret) >= 40
    text = path.read_text()
    assert secret not in text and secret[4:] not in text
    assert hashlib.sha256(secret.encode()).hexdigest() in text
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert tomllib.loads(text)["keys"][0]["groups"] == ["finance", "legal"]

    found = keys.load(path).find(secret)
    assert found == entry
    caller = found.caller()
    assert (caller.principal, caller.role, caller.groups, caller.key_name) == (
        "alice",
        Role.APPROVER,
        ("finance", "legal"),
        "alice-laptop",
    )
    assert keys.load(path).find(secret + "x") is None
    assert keys.load(path).find("") is None


def test_roles_are_ordered_and_the_highest_counts(tmp_path: Path) -> None:
    assert Role.VIEWER < Role.APPROVER < Role.OPERATOR
    path = tmp_path / "keys.json"
    secret, _ = keys.create(path, "svc", principal=None, roles=["viewer", "operator"], groups=())
    caller = keys.load(path).find(secret).caller()
    assert (caller.principal, caller.role) == ("svc", Role.OPERATOR)
    assert json.loads(path.read_text())["keys"][0]["roles"] == ["viewer", "operator"]


def test_names_are_unique_and_revoking_removes_the_key(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    secret, _ = keys.create(path, "ci", principal=None, roles=["operator"], groups=())
    with pytest.raises(ConfigurationError, match="a key named 'ci' exists"):
        keys.create(path, "ci", principal=None, roles=["viewer"], groups=())
    keys.revoke(path, "ci")
    assert keys.load(path).find(secret) is None
    with pytest.raises(ConfigurationError, match="no key named 'ci'"):
        keys.revoke(path, "ci")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[[keys]\n", "not valid TOML"),
        (
            "[[keys]]\nname = 'a'\nroles = ['root']\nsha256 = '%s'\n" % ("0" * 64),
            "unknown role 'root'",
        ),
        ("[[keys]]\nname = 'a'\nroles = ['viewer']\nsha256 = 'secret'\n", "64 lowercase hex"),
        ("[[keys]]\nname = 'a'\nroles = ['viewer']\n", "lacks 'sha256'"),
        (
            "[[keys]]\nname = 'a'\nrole = 'viewer'\nroles = ['viewer']\nsha256 = '%s'\n"
            % ("0" * 64),
            "unknown fields role",
        ),
        (
            "[[keys]]\nname = 'a b'\nroles = ['viewer']\nsha256 = '%s'\n" % ("0" * 64),
            "without spaces",
        ),
        ("[[keys]]\nname = 'a'\nroles = []\nsha256 = '%s'\n" % ("0" * 64), "non-empty list"),
        (
            ("[[keys]]\nname = 'a'\nroles = ['viewer']\nsha256 = '%s'\n" % ("0" * 64)) * 2,
            "names a twice",
        ),
        ("other = 1\n", "only a list `keys`"),
    ],
)
def test_a_broken_keys_file_is_refused_naming_the_file_and_the_problem(
    tmp_path: Path, text: str, words: str
) -> None:
    path = tmp_path / "keys.toml"
    path.write_text(text)
    with pytest.raises(ConfigurationError) as caught:
        keys.load(path)
    assert words in str(caught.value) and str(path) in str(caught.value)


def test_a_missing_file_means_no_keys_and_a_changed_file_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    assert keys.load(path).keys == ()
    first, _ = keys.create(path, "a", principal=None, roles=["viewer"], groups=())
    assert keys.load(path).find(first) is not None
    second, _ = keys.create(path, "b", principal=None, roles=["viewer"], groups=())
    assert keys.load(path).find(second) is not None


def test_ravel_keys_create_prints_the_key_once_and_list_never_shows_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAVEL_API_KEYS_FILE", str(tmp_path / "k.toml"))
    runner = CliRunner()
    made = runner.invoke(
        cli,
        [
            "keys",
            "create",
            "fin-bot",
            "--role",
            "approver",
            "--group",
            "finance",
            "--principal",
            "alice",
        ],
    )
    assert made.exit_code == 0, made.output
    secret = made.stdout.strip()
    assert secret.startswith("rvl_") and "\n" not in secret
    assert "principal alice, role approver, groups finance" in made.stderr
    assert keys.load(tmp_path / "k.toml").find(secret).caller().principal == "alice"

    listed = runner.invoke(cli, ["keys", "list", "--json"])
    assert json.loads(listed.stdout) == [
        {"name": "fin-bot", "principal": "alice", "roles": ["approver"], "groups": ["finance"]}
    ]
    assert secret not in listed.output

    twice = runner.invoke(cli, ["keys", "create", "fin-bot", "--role", "viewer"])
    assert twice.exit_code == 1 and "error: a key named 'fin-bot' exists" in twice.stderr
    bad = runner.invoke(cli, ["keys", "create", "x", "--role", "admin"])
    assert bad.exit_code == 2 and "admin" in bad.stderr
    gone = runner.invoke(cli, ["keys", "revoke", "fin-bot"])
    assert gone.exit_code == 0 and keys.load(tmp_path / "k.toml").keys == ()
