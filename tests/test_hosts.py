"""The API host check: the key goes to the configured origin only (hosts.normalize_host)."""

from __future__ import annotations

import pytest

from posthog_insights.errors import ConfigError
from posthog_insights.hosts import normalize_host


@pytest.mark.parametrize(
    ("host", "origin"),
    [
        ("https://us.posthog.com", "https://us.posthog.com"),
        ("https://us.posthog.com/", "https://us.posthog.com"),
        ("  https://EU.PostHog.com/  ", "https://eu.posthog.com"),
        ("https://posthog.example.com:443", "https://posthog.example.com"),
        ("https://posthog.example.com:8443/", "https://posthog.example.com:8443"),
        ("http://localhost:8000", "http://localhost:8000"),
        ("http://127.0.0.5:9", "http://127.0.0.5:9"),
        ("http://[::1]:8000/", "http://[::1]:8000"),
    ],
)
def test_normalize_host_accepts(host: str, origin: str) -> None:
    assert normalize_host(host) == origin


@pytest.mark.parametrize(
    ("host", "words"),
    [
        ("", "empty"),
        ("us.posthog.com", "https://us.posthog.com"),
        ("ftp://us.posthog.com", "scheme"),
        ("https://", "no host"),
        ("https://us.posthog.com:99999", "not a valid URL"),
        ("https://x.com/api", "without a path"),
        ("https://us.posthog.com/?a=1", "without ?query"),
        ("https://user:pw@us.posthog.com", "user:password"),
        ("http://posthog.example.com", "unencrypted"),
        ("https://us.i.posthog.com", "use https://us.posthog.com or https://eu.posthog.com"),
        ("https://eu.i.posthog.com/", "ingestion"),
        ("https://app.posthog.com", "UI host"),
    ],
)
def test_normalize_host_refuses(host: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        normalize_host(host)
    assert str(info.value).startswith("host: ")
    assert words in str(info.value)


def test_plain_http_to_a_private_host_needs_the_explicit_switch() -> None:
    assert (
        normalize_host("http://posthog.internal:8000", allow_insecure_http=True)
        == "http://posthog.internal:8000"
    )
