"""Pure functions of the app: ids, text rules, pre-flagger, settings, cursors, image sniffing."""

from __future__ import annotations

import time

import pytest

from freehold.app.ids import MAX_ID, id_floor, id_time_ms, new_id, parse_id
from freehold.app.services.errors import Invalid
from freehold.app.services.feed import parse_cursor
from freehold.app.services.media import sniff_image
from freehold.app.services.moderation import REASONS, preflag_match
from freehold.app.services.text import check_body, hashtags, mentions
from freehold.app.settings import Settings, SettingsError


def test_ids_time_ordered_and_unguessable() -> None:
    now = int(time.time() * 1000)
    a = new_id(now)
    b = new_id(now + 1)
    assert 0 < a < b <= MAX_ID
    assert id_time_ms(a) == now
    assert id_floor(now) <= a < id_floor(now + 1)
    same_ms = {new_id(now) for _ in range(1000)}
    assert len(same_ms) > 990  # 22 random bits per millisecond, not a counter
    ordered = sorted(same_ms)
    gaps = [b - a for a, b in zip(ordered, ordered[1:], strict=False)]
    assert sum(gaps) / len(gaps) > 1000  # spread over 4 million values, not a counter


def test_parse_id_refuses_junk() -> None:
    assert parse_id("123") == 123
    for bad in ("", "abc", "-1", "0", "9223372036854775808", "1" * 20, "1e5", None):
        assert parse_id(bad) is None


def test_body_counts_code_points() -> None:
    assert check_body("😀" * 1000, 1000) == "😀" * 1000
    with pytest.raises(Invalid, match="1001 characters"):
        check_body("é" * 1001, 1000)
    with pytest.raises(Invalid):
        check_body("  \n ", 1000)
    assert check_body("", 1000, allow_empty=True) == ""


def test_hashtags_and_mentions() -> None:
    body = "#Hello #hello world#not @Bob_1 and @al (@x too short) e@mail.org #Élan"
    assert hashtags(body) == ["hello", "élan"]
    assert mentions(body) == ["bob_1"]


@pytest.mark.parametrize("text", [
    "Death to the traitors",
    "Bring your guns tomorrow",
    "time to take up arms, patriots",
    "we should hang them all",
    "Let's go burn down the courthouse",
    "string them up",
])
def test_preflagger_catches_incitement(text: str) -> None:
    assert preflag_match(text) is not None


@pytest.mark.parametrize("text", [
    "This film killed it at the box office",
    "We should all go vote on Tuesday",
    "Death metal concert tonight",
    "my code is shooting errors everywhere",
])
def test_preflagger_leaves_ordinary_posts(text: str) -> None:
    assert preflag_match(text) is None


def test_severity_puts_violence_first() -> None:
    assert min(REASONS, key=REASONS.__getitem__) == "incitement"
    assert REASONS["threat"] < REASONS["harassment"] < REASONS["spam"] < REASONS["other"]


def test_settings_from_env() -> None:
    s = Settings.from_env({"FREEHOLD_REDIS_CLUSTER": "1", "FREEHOLD_FEED_CAP": "500",
                           "FREEHOLD_DATABASE_URL": "postgresql://x/y"})
    assert s.redis_cluster is True and s.feed_cap == 500 and s.read_url == "postgresql://x/y"
    assert Settings.from_env(s.to_env()) == s
    with pytest.raises(SettingsError, match="FREEHOLD_FEED_CAP"):
        Settings.from_env({"FREEHOLD_FEED_CAP": "lots"})


def test_cursor() -> None:
    assert parse_cursor(None) == (None, 0)
    assert parse_cursor("123.40") == (123, 40)
    assert parse_cursor("123") == (123, 0)
    for bad in ("x", "1.x", "-5.1", "1.1234567"):
        with pytest.raises(Invalid):
            parse_cursor(bad)


def test_sniff_image() -> None:
    assert sniff_image(b"\x89PNG\r\n\x1a\n....") == ("image/png", "png")
    assert sniff_image(b"\xff\xd8\xff\xe0") == ("image/jpeg", "jpg")
    assert sniff_image(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == ("image/webp", "webp")
    with pytest.raises(Invalid):
        sniff_image(b"<svg onload=alert(1)>")


def test_settings_refuse_what_they_cannot_read() -> None:
    """Booleans are 1/0, true/false, yes/no, on/off: "2" is an error naming the variable (it
    was a silent False); unknown names and the process knobs are told apart."""
    from freehold.app.settings import check_env

    assert Settings.from_env({"FREEHOLD_REDIS_CLUSTER": "on"}).redis_cluster is True
    with pytest.raises(SettingsError, match="FREEHOLD_REDIS_CLUSTER='2'"):
        Settings.from_env({"FREEHOLD_REDIS_CLUSTER": "2"})
    with pytest.raises(SettingsError, match="FREEHOLD_FEED_CAPP: no such setting"):
        check_env({"FREEHOLD_FEED_CAPP": "1"})
    assert check_env({"FREEHOLD_WEB_WORKERS": "4", "FREEHOLD_FEED_CAP": "9"}).feed_cap == 9
    assert Settings(feed_cap=5).replace(feed_cap=6).feed_cap == 6
    with pytest.raises(SettingsError, match="FREEHOLD_FEED_CAP"):
        Settings().replace(feed_cap="many")
