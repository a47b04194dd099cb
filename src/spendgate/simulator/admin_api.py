"""A faithful fake of the providers' admin usage and cost reports, for tests and the demo.

Routes (GET), in each provider's published shape:

- OpenAI: ``/v1/organization/usage/completions``, ``/v1/organization/usage/embeddings``,
  ``/v1/organization/costs`` (``Authorization: Bearer``; ``start_time``/``end_time`` in Unix
  seconds; ``amount.value`` a JSON number written with every digit of its exact decimal);
- Anthropic: ``/v1/organizations/usage_report/messages``, ``/v1/organizations/cost_report``
  (``x-api-key`` and ``anthropic-version``; ``starting_at``/``ending_at`` RFC 3339; ``amount`` a
  decimal string in cents).

Like the real reports: daily buckets for every day of the range (empty ones included), paged by
``limit`` buckets with an opaque ``next_page`` cursor, each bucket's results grouped by the
``group_by[]`` asked for (an ungrouped dimension is null), unknown groupings, limits and
cursors refused with a 400 in the provider's error shape. ``AdminApiOptions`` makes it
misbehave on purpose: a smaller page size than asked (more pages), 429 with ``retry-after`` (or a
5xx) on the first requests, "legacy" answers that lack the fields older responses lacked, and a set of
admin keys outside which every key gets a 401. Only daily buckets (``bucket_width=1d``) are served.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from spendgate.simulator import anthropic_shapes, openai_shapes
from spendgate.simulator.admin_dataset import AdminDataset, CostRecord, UsageRecord
from spendgate.simulator.asgi_io import JSON_CONTENT_TYPE, Receive, Send, read_body, send_response

__all__ = ("ADMIN_PATH_PREFIX", "AdminApi", "AdminApiOptions", "AdminRequest", "create_admin_api_app")

ADMIN_PATH_PREFIX = "/v1/organization"  # both providers' admin paths start so
_DAY = timedelta(days=1)
_MAX_DAYS = 3660


@dataclass(frozen=True, slots=True)
class _Report:
    provider: str  # openai or anthropic
    kind: str  # completions, embeddings, costs, messages, cost_report
    group_by: frozenset[str]
    max_limit: int
    default_limit: int = 7


_REPORTS: dict[str, _Report] = {
    "/v1/organization/usage/completions": _Report(
        "openai",
        "completions",
        frozenset({"project_id", "user_id", "api_key_id", "model", "batch", "service_tier"}),
        31,
    ),
    "/v1/organization/usage/embeddings": _Report(
        "openai", "embeddings", frozenset({"project_id", "user_id", "api_key_id", "model"}), 31
    ),
    "/v1/organization/costs": _Report("openai", "costs", frozenset({"project_id", "line_item", "api_key_id"}), 180),
    "/v1/organizations/usage_report/messages": _Report(
        "anthropic",
        "messages",
        frozenset({"api_key_id", "workspace_id", "model", "service_tier", "context_window"}),
        31,
    ),
    "/v1/organizations/cost_report": _Report(
        "anthropic", "cost_report", frozenset({"workspace_id", "description"}), 31
    ),
}


@dataclass(frozen=True, slots=True)
class AdminApiOptions:
    page_size: int = 31  # at most this many buckets a page, whatever the request's limit
    throttle_first: int = 0  # answer this many first requests with ``throttle_status``
    throttle_status: int = 429  # 429 (with ``retry-after``), or a 5xx such as 503 or 529
    retry_after: str = "1"  # the retry-after of those 429s
    legacy: bool = False  # leave out fields that older responses lack
    admin_keys: frozenset[str] | None = None  # the keys accepted; None: any non-empty key


@dataclass(frozen=True, slots=True)
class AdminRequest:
    """One request the fake received (the key itself is not kept)."""

    path: str
    query: tuple[tuple[str, str], ...]
    status: int

    def params(self, name: str) -> list[str]:
        return [value for key, value in self.query if key == name]


class _BadRequest(Exception):
    pass


@dataclass
class AdminApi:
    """The admin routes. ``dataset`` may be changed while serving (tests add records to it)."""

    dataset: AdminDataset = field(default_factory=AdminDataset)
    options: AdminApiOptions = field(default_factory=AdminApiOptions)
    requests: deque[AdminRequest] = field(default_factory=lambda: deque(maxlen=10_000))
    _throttled: int = 0

    def serves(self, path: str) -> bool:
        return path in _REPORTS

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        await read_body(receive)
        query = tuple(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
        report = _REPORTS.get(path)
        provider = report.provider if report else "openai"
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}

        def answer(status: int, body: bytes, extra: Sequence[tuple[bytes, bytes]] = ()) -> Any:
            self.requests.append(AdminRequest(path, query, status))
            return send_response(send, status, body, [JSON_CONTENT_TYPE, *extra])

        if report is None:
            await answer(404, openai_shapes.error_body(404, f"Invalid URL ({scope['method']} {path})"))
            return
        if scope["method"] != "GET":
            await answer(405, _error(provider, 405, f"{scope['method']} is not allowed on {path}"))
            return
        key = _admin_key(provider, headers)
        if not key or (self.options.admin_keys is not None and key not in self.options.admin_keys):
            message = "Incorrect API key provided." if provider == "openai" else "invalid x-api-key"
            await answer(401, _error(provider, 401, message))
            return
        if provider == "anthropic" and not headers.get("anthropic-version"):
            await answer(400, _error(provider, 400, "anthropic-version: header is required"))
            return
        if self._throttled < self.options.throttle_first:
            self._throttled += 1
            status = self.options.throttle_status
            if status == 429:
                retry_after = self.options.retry_after.encode()
                await answer(429, _error(provider, 429, "Rate limit exceeded."), [(b"retry-after", retry_after)])
            else:
                await answer(status, _error(provider, status, "Simulated overload."))
            return
        try:
            page = self._page(report, query)
        except _BadRequest as problem:
            await answer(400, _error(provider, 400, str(problem)))
            return
        await answer(200, _json_bytes(page))

    # ---- one page ------------------------------------------------------------------------

    def _page(self, report: _Report, query: Sequence[tuple[str, str]]) -> dict[str, Any]:
        params: dict[str, list[str]] = {}
        for name, value in query:
            params.setdefault(name.removesuffix("[]"), []).append(value)
        group_by = params.get("group_by", [])
        unknown = sorted(set(group_by) - report.group_by)
        if unknown:
            raise _BadRequest(
                f"invalid group_by value(s) {', '.join(unknown)}; allowed: {', '.join(sorted(report.group_by))}"
            )
        if _single(params, "bucket_width", "1d") != "1d":
            raise _BadRequest("this simulated provider serves daily buckets only (bucket_width=1d)")
        limit_text = _single(params, "limit", str(report.default_limit))
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= report.max_limit:
            raise _BadRequest(f"limit must be an integer from 1 to {report.max_limit}")
        days = self._days(report, params)
        offset = _decode_cursor(report, params["page"][-1]) if params.get("page") else 0
        if offset > len(days):
            raise _BadRequest("invalid page cursor")
        size = min(int(limit_text), self.options.page_size)
        shown = days[offset : offset + size]
        more = offset + len(shown) < len(days)
        grouped = frozenset(group_by)
        buckets = [self._bucket(report, day, grouped) for day in shown]
        page: dict[str, Any] = {"data": buckets, "has_more": more}
        page["next_page"] = _encode_cursor(report, offset + len(shown)) if more else None
        if report.provider == "openai":
            page = {"object": "page", **page}
        return page

    def _days(self, report: _Report, params: dict[str, list[str]]) -> list[date]:
        if report.provider == "openai":
            start = _unix(_single(params, "start_time", None), "start_time")
            end_text = _single(params, "end_time", "")
            end = _unix(end_text, "end_time") if end_text else start + report.default_limit * _DAY
        else:
            start = _rfc3339(_single(params, "starting_at", None), "starting_at")
            end_text = _single(params, "ending_at", "")
            end = _rfc3339(end_text, "ending_at") if end_text else start + report.default_limit * _DAY
        if end <= start:
            raise _BadRequest("the end of the range must be after its start")
        first = start.date()
        days = []
        day = first
        while datetime.combine(day, time(), UTC) < end:
            days.append(day)
            day += _DAY
            if len(days) > _MAX_DAYS:
                raise _BadRequest("the range is too long")
        return days

    def _bucket(self, report: _Report, day: date, group_by: frozenset[str]) -> dict[str, Any]:
        start = datetime.combine(day, time(), UTC)
        end = start + _DAY
        if report.kind in ("costs", "cost_report"):
            records: Iterable[Any] = (c for c in self.dataset.costs if c.provider == report.provider and c.day == day)
            results = [
                _cost_result(report, group, members, self.options.legacy)
                for group, members in _grouped(records, group_by, _cost_dimension(report)).items()
            ]
        else:
            records = (u for u in self.dataset.usage if u.report == report.kind and u.day == day)
            results = [
                _usage_result(report, group, members, self.options.legacy)
                for group, members in _grouped(records, group_by, _usage_dimension).items()
            ]
        if report.provider == "openai":
            return {
                "object": "bucket",
                "start_time": int(start.timestamp()),
                "end_time": int(end.timestamp()),
                "results": results,
            }
        return {"starting_at": _iso(start), "ending_at": _iso(end), "results": results}


def create_admin_api_app(dataset: AdminDataset | None = None, options: AdminApiOptions | None = None) -> AdminApi:
    """The admin routes alone, as an ASGI app (the simulator also serves them)."""
    return AdminApi(dataset or AdminDataset(), options or AdminApiOptions())


# ---- grouping ----------------------------------------------------------------------------

Group = tuple[tuple[str, Any], ...]


def _grouped(
    records: Iterable[Any], group_by: frozenset[str], dimension: Callable[[Any, str], Any]
) -> dict[Group, list[Any]]:
    groups: dict[Group, list[Any]] = {}
    for record in records:
        key = tuple(sorted((name, dimension(record, name)) for name in group_by))
        groups.setdefault(key, []).append(record)
    return groups


def _usage_dimension(record: UsageRecord, name: str) -> Any:
    if name == "project_id" or name == "workspace_id":
        return record.project_or_workspace_id
    if name == "batch":
        return record.service_tier == "batch"
    if name == "service_tier" and record.provider == "openai":
        return _openai_tier(record.service_tier)
    return getattr(record, name)


def _cost_dimension(report: _Report) -> Callable[[CostRecord, str], Any]:
    def dimension(record: CostRecord, name: str) -> Any:
        if name in ("project_id", "workspace_id"):
            return record.project_or_workspace_id
        if name in ("line_item", "description"):
            return record.line_item
        return getattr(record, name)

    return dimension


def _openai_tier(tier: str) -> str:
    return "default" if tier == "standard" else tier


# ---- results in each provider's shape -----------------------------------------------------


def _usage_result(report: _Report, group: Group, members: list[UsageRecord], legacy: bool) -> dict[str, Any]:
    dims = dict(group)
    total = {
        name: sum(getattr(member, name) for member in members)
        for name in (
            "input_tokens",
            "cached_input_tokens",
            "cache_write_tokens",
            "cache_write_1h_tokens",
            "output_tokens",
            "requests",
        )
    }
    if report.provider == "openai":
        result: dict[str, Any] = {
            "object": f"organization.usage.{report.kind}.result",
            "input_tokens": total["input_tokens"],
        }
        if report.kind == "completions":
            result["output_tokens"] = total["output_tokens"]
            if not legacy:
                result.update(
                    input_cached_tokens=total["cached_input_tokens"],
                    input_audio_tokens=0,
                    output_audio_tokens=0,
                )
        result["num_model_requests"] = total["requests"]
        fields = ["project_id", "user_id", "api_key_id", "model"]
        if report.kind == "completions":
            fields += ["batch"] if legacy else ["batch", "service_tier"]
        result.update({name: dims.get(name) for name in fields})
        return result
    writes_1h = total["cache_write_1h_tokens"]
    writes_5m = total["cache_write_tokens"] - writes_1h
    result = {
        "uncached_input_tokens": total["input_tokens"] - total["cached_input_tokens"] - total["cache_write_tokens"],
        "cache_read_input_tokens": total["cached_input_tokens"],
        "output_tokens": total["output_tokens"],
        "api_key_id": dims.get("api_key_id"),
        "workspace_id": dims.get("workspace_id"),
        "model": dims.get("model"),
    }
    if not legacy:
        result.update(
            cache_creation={"ephemeral_5m_input_tokens": writes_5m, "ephemeral_1h_input_tokens": writes_1h},
            server_tool_use={"web_search_requests": 0},
            service_tier=dims.get("service_tier"),
            context_window=dims.get("context_window"),
        )
    return result


def _cost_result(report: _Report, group: Group, members: list[CostRecord], legacy: bool) -> dict[str, Any]:
    dims = dict(group)
    amount = sum((member.amount_usd for member in members), Decimal(0))
    if report.provider == "openai":
        return {
            "object": "organization.costs.result",
            "amount": {"value": amount} if legacy else {"value": amount, "currency": "usd"},
            "line_item": dims.get("line_item"),
            "project_id": dims.get("project_id"),
        }
    described = "description" in dims
    first = members[0]
    result: dict[str, Any] = {
        "amount": format(amount.scaleb(2), "f"),  # cents, as a decimal string
        "currency": "USD",
        "workspace_id": dims.get("workspace_id"),
        "description": first.line_item if described else None,
        "model": first.model if described else None,
    }
    if not legacy:
        result.update(
            cost_type=first.cost_type if described else None,
            token_type=first.token_type if described else None,
            service_tier=first.service_tier if described else None,
            context_window=first.context_window if described else None,
        )
    return result


# ---- small helpers ------------------------------------------------------------------------


def _error(provider: str, status: int, message: str) -> bytes:
    if provider == "anthropic":
        return anthropic_shapes.error_body(status, message, "req_simadmin")
    return openai_shapes.error_body(status, message)


def _admin_key(provider: str, headers: dict[str, str]) -> str | None:
    if provider == "anthropic":
        return headers.get("x-api-key") or None
    authorization = headers.get("authorization", "")
    if authorization[:7].lower() != "bearer ":
        return None
    return authorization[7:].strip() or None


def _single(params: dict[str, list[str]], name: str, default: str | None) -> str:
    values = params.get(name)
    if not values:
        if default is None:
            raise _BadRequest(f"{name} is required")
        return default
    if len(values) > 1:
        raise _BadRequest(f"{name} is given more than once")
    return values[0]


def _unix(text: str, name: str) -> datetime:
    if not text.isdigit() or len(text) > 12:
        raise _BadRequest(f"{name} must be Unix seconds")
    return datetime.fromtimestamp(int(text), UTC)


def _rfc3339(text: str, name: str) -> datetime:
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        raise _BadRequest(f"{name} must be an RFC 3339 time") from None
    if instant.utcoffset() is None:
        raise _BadRequest(f"{name} must have a timezone")
    return instant.astimezone(UTC)


def _iso(instant: datetime) -> str:
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")


def _encode_cursor(report: _Report, offset: int) -> str:
    token = base64.urlsafe_b64encode(f"{report.kind}:{offset}".encode()).decode()
    return f"page_{token}" if report.provider == "anthropic" else token


def _decode_cursor(report: _Report, cursor: str) -> int:
    token = cursor.removeprefix("page_") if report.provider == "anthropic" else cursor
    try:
        kind, _, offset = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _BadRequest("invalid page cursor") from None
    if kind != report.kind or not offset.isdigit():
        raise _BadRequest("invalid page cursor")
    return int(offset)


def _json_bytes(document: Any) -> bytes:
    """JSON in which a Decimal is a number written with exactly its digits (as a provider's
    JSON carries them); orjson and ``json`` would need it turned into a float first."""
    return _encode(document).encode()


def _encode(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{_encode(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_encode(item) for item in value) + "]"
    if isinstance(value, Decimal):
        return format(value, "f")
    return json.dumps(value)
