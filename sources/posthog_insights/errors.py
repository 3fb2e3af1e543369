"""Errors raised by the PostHog Insights source.

Every error's ``str()`` is one line that names the setting or the HTTP status and says what to do, so a
scheduler's log shows the fix without a traceback. No message, ``repr`` or attribute carries the personal
API key: the client builds these errors from statuses, paths and PostHog's ``detail`` text only (scrubbed of
the key and truncated), and raises them ``from None`` so that no httpx request (whose headers hold the key)
hangs off ``__cause__`` or ``__context__``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

# PostHog's `detail` texts are short; anything longer is an HTML error page or a stack trace.
DETAIL_MAX_CHARS = 200


def one_line(text: str) -> str:
    """Collapse whitespace (newlines included) so that a message stays on one log line."""
    return " ".join(text.split())


def truncate(text: str, limit: int = DETAIL_MAX_CHARS) -> str:
    """One line of at most ``limit`` characters, ending in an ellipsis when cut."""
    flat = one_line(text)
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and every cause or context behind it, each once (a chain can loop)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _with_detail(message: str, detail: str | None) -> str:
    return f"{message} (PostHog said: {truncate(detail)})" if detail else message


class PostHogInsightsError(Exception):
    """Base class of every error of this source; ``status`` is the HTTP status when one caused it."""

    status: int | None = None

    def __init__(self, message: str) -> None:
        super().__init__(one_line(message))

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        # Subclasses take keyword fields; pickle (multiprocessing, dlt's workers) rebuilds from the text.
        return (_rebuild, (type(self), self.message, dict(self.__dict__)))


def _rebuild(cls: type[PostHogInsightsError], message: str, state: dict[str, Any]) -> PostHogInsightsError:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


class ConfigError(PostHogInsightsError, ValueError):
    """An invalid setting; the message starts with the setting's name, e.g. ``host: ...``."""

    def __init__(self, setting: str, problem: str | None = None) -> None:
        # Either ConfigError("host", "why") or ConfigError("host: why").
        if problem is None:
            setting, _, problem = setting.partition(":")
            problem = problem.strip()
        self.setting = setting.strip()
        super().__init__(f"{self.setting}: {problem}")


class AuthenticationError(PostHogInsightsError):
    """HTTP 401: the personal API key is missing, malformed or revoked."""

    status = 401

    def __init__(self, origin: str, detail: str | None = None) -> None:
        self.origin = origin
        self.detail = truncate(detail) if detail else None
        super().__init__(
            _with_detail(
                f"HTTP 401 from {origin}: the personal API key was rejected; check POSTHOG_PERSONAL_API_KEY"
                " / sources.posthog_insights.personal_api_key",
                detail,
            )
        )


class PermissionDeniedError(PostHogInsightsError):
    """HTTP 403: the key lacks a scope, or has no access to the project."""

    status = 403

    def __init__(
        self, origin: str, *, project_id: int | None, scope: str | None, detail: str | None = None
    ) -> None:
        self.origin = origin
        self.project_id = project_id
        self.scope = scope
        self.detail = truncate(detail) if detail else None
        where = f"project {project_id}" if project_id is not None else "this project"
        need = f"the '{scope}' scope" if scope else "the needed scope"
        super().__init__(
            _with_detail(
                f"HTTP 403 from {origin} for {where}: the personal API key may not read it; give the key"
                f" {need} and access to {where} in PostHog (Settings > Personal API keys)",
                detail,
            )
        )


class NotFoundError(PostHogInsightsError):
    """HTTP 404: no such project, insight or query (or the key cannot see it)."""

    status = 404

    def __init__(self, origin: str, path: str, detail: str | None = None) -> None:
        self.origin = origin
        self.path = path
        self.detail = truncate(detail) if detail else None
        super().__init__(
            _with_detail(
                f"HTTP 404 from {origin} for {path}: not found; check project_id (the number in the"
                " project's URL) and the host (us or eu)",
                detail,
            )
        )


class QueryError(PostHogInsightsError):
    """HTTP 400 (``validation_error``): PostHog refused the request or could not compute the query."""

    status = 400

    def __init__(
        self,
        origin: str,
        path: str,
        *,
        detail: str | None,
        code: str | None = None,
        attr: str | None = None,
        insight_id: int | str | None = None,
    ) -> None:
        self.origin = origin
        self.path = path
        self.detail = truncate(detail) if detail else None
        self.code = code
        self.attr = attr
        self.insight_id = insight_id
        what = f"insight {insight_id}" if insight_id is not None else path
        field = f" (field '{attr}')" if attr else ""
        super().__init__(
            f"HTTP 400 from {origin} for {what}: PostHog rejected the request{field}:"
            f" {self.detail or 'no detail given'}; fix the insight's query or the filters passed, or skip it"
        )


class RateLimitExceededError(PostHogInsightsError):
    """HTTP 429 whose wait is longer than ``max_wait_s`` (or that persists through every retry)."""

    status = 429

    def __init__(
        self, origin: str, *, wait_s: float | None, max_wait_s: float, attempts: int | None = None
    ) -> None:
        self.origin = origin
        self.wait_s = wait_s
        self.max_wait_s = max_wait_s
        self.attempts = attempts
        if attempts is not None:
            text = (
                f"HTTP 429 from {origin}: still throttled after {attempts} attempts; stopping the run"
                " (what was fetched is kept); re-run later or lower rate_limit"
            )
        else:
            text = (
                f"HTTP 429 from {origin}: PostHog asks to wait {wait_s or 0:.0f} s, longer than max_wait_s ="
                f" {max_wait_s:.0f} s; stopping the run (what was fetched is kept); re-run later or raise"
                " max_wait_s"
            )
        super().__init__(text)


class TransportError(PostHogInsightsError):
    """Retries exhausted on 5xx, connection errors, timeouts or unparsable bodies."""

    def __init__(
        self,
        origin: str,
        *,
        method: str,
        path: str,
        attempts: int,
        last_cause: str,
        status: int | None = None,
    ) -> None:
        self.origin = origin
        self.method = method
        self.path = path
        self.attempts = attempts
        self.last_cause = truncate(last_cause)
        self.status = status
        super().__init__(
            f"{method} {path} on {origin} failed after {attempts} attempt{'s' if attempts != 1 else ''};"
            f" last cause: {self.last_cause}; check that host is right and reachable (network, proxy,"
            " status.posthog.com), or raise max_retries / timeout_s"
        )


class UnexpectedStatusError(PostHogInsightsError):
    """An HTTP status the API does not document for this endpoint (e.g. 405, 409, 413)."""

    def __init__(self, origin: str, *, method: str, path: str, status: int, detail: str | None) -> None:
        self.origin = origin
        self.method = method
        self.path = path
        self.status = status
        self.detail = truncate(detail) if detail else None
        super().__init__(
            _with_detail(
                f"HTTP {status} from {origin} for {method} {path}: unexpected for this endpoint; check the"
                " host points at the PostHog API (not a proxy or the UI)",
                detail,
            )
        )


class UnsafeNextLinkError(PostHogInsightsError):
    """A pagination ``next`` link to another origin: following it would send the key elsewhere."""

    def __init__(self, origin: str, next_origin: str) -> None:
        self.origin = origin
        self.next_origin = next_origin
        super().__init__(
            f"pagination: PostHog's next link points to {next_origin}, not the configured host {origin};"
            " refusing to send the API key there; set host to the origin PostHog serves its API from"
            " (a proxy rewriting links?)"
        )


class PaginationLoopError(PostHogInsightsError):
    """A page repeats (same ``next`` link, or only items already seen): stop instead of looping."""

    def __init__(self, origin: str, path: str, reason: str) -> None:
        self.origin = origin
        self.path = path
        self.reason = reason
        super().__init__(
            f"pagination: {reason} while listing {path} on {origin}; stopped to avoid an endless loop;"
            " the listing order is unstable (send order=id) or the server paginates wrongly"
        )
