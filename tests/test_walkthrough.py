"""The feature-store walkthrough runs as a newcomer runs it, and shows what it says it shows."""
from __future__ import annotations

from feature_repo.walkthrough import walk


def test_walkthrough_shows_the_online_row_and_the_ttl_rule(tmp_path, capsys):
    shown = walk(tmp_path)
    assert shown == {
        "same_row_online": True,
        "offline_missing_after_ttl": True,
        "online_present_after_ttl": True,
        "served_missing_after_ttl": True,
    }
    out = capsys.readouterr().out
    for step in ("1. feast apply", "2. point-in-time join", "3. materialize", "4. 24 h later"):
        assert step in out
