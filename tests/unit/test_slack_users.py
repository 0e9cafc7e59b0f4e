"""The Slack users file: Slack ids to principals and groups, with errors that name the
problem, and the optional workspace pin."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import ConfigurationError
from pipeline.slack.users import SlackUser, load, parse

GOOD = """
team_id = "T0RAVEL"
[users.UALICE]
principal = "alice"
groups = ["finance", "group:legal"]
[users.UBOB]
principal = "bob"
"""


def test_users_map_to_principals_and_groups_in_one_workspace(tmp_path: Path) -> None:
    path = tmp_path / "slack-users.toml"
    path.write_text(GOOD)
    found = load(path)
    assert found.find("T0RAVEL", "UALICE") == SlackUser("alice", ("finance", "legal"))
    assert found.find("T0RAVEL", "UBOB") == SlackUser("bob", ())
    assert found.find("TOTHER", "UALICE") is None
    assert found.find("T0RAVEL", "UEVE") is None and found.find("T0RAVEL", None) is None
    assert load(tmp_path / "missing.toml").users == {}


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[users.UALICE]\ngroups = []\n", "lacks 'principal'"),
        ('[users.UALICE]\nprincipal = "alice"\nrole = "admin"\n', "unknown fields role"),
        ('[users.UALICE]\nprincipal = "al ice"\n', "principal 'al ice' is not valid"),
        ('[users.UALICE]\nprincipal = "alice"\ngroups = "finance"\n', "groups must be a list"),
        ('[users.alice]\nprincipal = "alice"\n', "'alice' is not a Slack id"),
        ('team = "T1"\n', "only `team_id` and a table `users`"),
        ("[users\n", "not valid TOML"),
    ],
)
def test_a_broken_file_is_refused_naming_the_problem(text: str, words: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        parse(text, Path("/etc/ravel/slack-users.toml"))
    assert words in str(raised.value) and "/etc/ravel/slack-users.toml" in str(raised.value)
