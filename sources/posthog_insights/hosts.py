"""The API host: which URLs may carry the personal API key.

The key is sent to the configured origin only, so the origin is checked once, where the settings are read:
a URL with a path, a query or credentials, PostHog's UI, website or ingestion hosts, and plain `http://`
to anything but loopback (unless allowed explicitly) are refused with a message that names the fix.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

import httpx

from posthog_insights.errors import ConfigError

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _is_loopback(hostname: str) -> bool:
    if hostname == "localhost" or hostname.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def format_origin(scheme: str, hostname: str, port: int | None) -> str:
    host = f"[{hostname}]" if ":" in hostname else hostname
    if port is None or port == _DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def normalize_host(host: str, *, allow_insecure_http: bool = False) -> str:
    """The API origin ``scheme://host[:port]`` (lower-case host, default port dropped, no trailing slash).

    A trailing ``/`` is accepted; any other path, a query or a fragment is refused rather than stripped:
    the client appends ``/api/...`` to the origin, so ``https://x.com/api`` or a sub-path deployment would
    silently produce wrong URLs. Also refused: schemes other than http/https, user:password in the URL,
    plain ``http://`` to a non-loopback host (the key would travel in clear) unless
    ``allow_insecure_http``, PostHog's ingestion hosts (``*.i.posthog.com``) and UI/marketing hosts.
    """
    if not isinstance(host, str):
        raise ConfigError("host", f"expected a URL like https://us.posthog.com, got {type(host).__name__}")
    raw = host.strip()
    if not raw:
        raise ConfigError("host", "empty; use https://us.posthog.com, https://eu.posthog.com or your own URL")
    shown = repr(raw if len(raw) <= 80 else raw[:79] + "…")
    if "://" not in raw:
        hint = (
            f"https://{raw.rstrip('/')}" if re.fullmatch(r"[A-Za-z0-9.-]+(:\d+)?/?", raw) else "https://..."
        )
        raise ConfigError("host", f"{shown} has no scheme; use {hint}")
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError as exc:
        raise ConfigError("host", f"{shown} is not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ConfigError("host", f"scheme {scheme!r} is not supported; use https://")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise ConfigError("host", "must not contain user:password@; the personal API key is sent as a header")
    hostname = (parts.hostname or "").lower().rstrip(".")
    if not hostname:
        raise ConfigError("host", f"{shown} has no host name; use e.g. https://us.posthog.com")
    if parts.query or parts.fragment or "?" in raw or "#" in raw:
        raise ConfigError(
            "host", "must be an origin without ?query or #fragment, e.g. https://us.posthog.com"
        )
    if parts.path not in ("", "/"):
        origin = format_origin(scheme, hostname, port)
        raise ConfigError(
            "host",
            f"must be an origin without a path (got path {parts.path[:60]!r}); use {origin} (the client adds"
            " /api/... itself)",
        )
    if hostname.endswith(".i.posthog.com"):
        raise ConfigError(
            "host",
            f"{hostname} is an event-ingestion host, not the API host; use https://us.posthog.com or"
            " https://eu.posthog.com",
        )
    if hostname == "app.posthog.com":
        raise ConfigError(
            "host",
            "app.posthog.com is PostHog's UI host, not the API host; use https://us.posthog.com (US cloud) or"
            " https://eu.posthog.com (EU cloud)",
        )
    if hostname in ("posthog.com", "www.posthog.com"):
        raise ConfigError(
            "host",
            f"{hostname} is PostHog's website; use https://us.posthog.com or https://eu.posthog.com",
        )
    if scheme == "http" and not allow_insecure_http and not _is_loopback(hostname):
        raise ConfigError(
            "host",
            f"plain http:// to {hostname} would send the API key unencrypted; use https://, or on a trusted"
            " private network opt in with --allow-insecure-http (allow_insecure_http = true)",
        )
    return format_origin(scheme, hostname, port)


def origin_of(url: httpx.URL) -> str:
    """The origin of a URL, in `normalize_host`'s spelling, to compare with the configured one."""
    return format_origin(url.scheme.lower(), url.host.lower().rstrip("."), url.port)
