"""Refusals in the provider's own error shape, so SDKs raise their usual exceptions.

OpenAI: ``{"error": {"message", "type", "code"}}``;
Anthropic: ``{"type": "error", "error": {"type", "message"}}``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import orjson

from spendgate.budgets.enforcer import (
    BudgetExceeded,
    PolicyViolation,
    RateLimited,
    Refusal,
    ScopeSuspended,
    TokensNeverFit,
)
from spendgate.money import format_usd

OPENAI = "openai"
ANTHROPIC = "anthropic"
GEMINI = "gemini"
# Google's error shape names a gRPC status beside the HTTP one: google-genai reads both.
_GRPC_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    402: "RESOURCE_EXHAUSTED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "INVALID_ARGUMENT",
    408: "DEADLINE_EXCEEDED",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def grpc_status(status: int) -> str:
    return _GRPC_STATUS.get(status, "INTERNAL" if status >= 500 else "FAILED_PRECONDITION")


@dataclass(frozen=True)
class GatewayError(Exception):
    status: int
    type: str
    message: str
    code: str | None = None
    headers: tuple[tuple[bytes, bytes], ...] = field(default=())
    details: dict | None = None

    def body(self, shape: str) -> bytes:
        if shape == GEMINI:
            # {"error": {"code", "message", "status"}}; spendgate's own type rides in details.
            details = [{"@type": "type.googleapis.com/spendgate.Error", "type": self.type, **(self.details or {})}]
            return orjson.dumps(
                {
                    "error": {
                        "code": self.status,
                        "message": self.message,
                        "status": grpc_status(self.status),
                        "details": details,
                    }
                }
            )
        if shape == ANTHROPIC:
            error: dict = {"type": self.type, "message": self.message}
            if self.details:
                error.update(self.details)
            return orjson.dumps({"type": "error", "error": error})
        error = {"message": self.message, "type": self.type, "code": self.code or self.type, "param": None}
        if self.details:
            error.update(self.details)
        return orjson.dumps({"error": error})


def invalid_request(message: str) -> GatewayError:
    return GatewayError(400, "invalid_request_error", message)


def authentication_error(message: str) -> GatewayError:
    return GatewayError(401, "authentication_error", message, code="invalid_api_key")


def permission_denied(message: str, code: str | None = None) -> GatewayError:
    # The providers' 403: the SDKs raise PermissionDeniedError, and do not retry it.
    return GatewayError(403, "permission_error", message, code=code)


def request_too_large(limit: int) -> GatewayError:
    return GatewayError(413, "request_too_large", f"request body is larger than the gateway's limit of {limit} bytes")


def request_timeout(what: str, seconds: float) -> GatewayError:
    return GatewayError(408, "request_timeout", f"the {what} did not arrive within {seconds:g}s")


def service_overloaded() -> GatewayError:
    # Every connection the gateway allows has a request in progress; the SDKs retry a 503.
    return GatewayError(
        503,
        "service_unavailable",
        "spendgate is at its connection limit; nothing was sent upstream, retry shortly",
        code="overloaded",
        headers=((b"retry-after", b"1"),),
    )


def not_found(path: str) -> GatewayError:
    return GatewayError(404, "not_found_error", f"spendgate does not serve {path}")


def method_not_allowed(method: str, path: str) -> GatewayError:
    return GatewayError(405, "invalid_request_error", f"{method} is not allowed on {path}")


def upstream_unreachable(provider: str, reason: str) -> GatewayError:
    return GatewayError(502, "upstream_error", f"could not reach {provider}: {reason}")


def upstream_connect_timeout(provider: str, seconds: float) -> GatewayError:
    # Nothing was sent: unreachable (502), not a request the provider may have started (504).
    return upstream_unreachable(provider, f"no connection within {seconds:g}s")


def upstream_timeout(provider: str, seconds: float) -> GatewayError:
    return GatewayError(504, "upstream_error", f"{provider} did not answer within {seconds:g}s")


def enforcement_unavailable(reason: str) -> GatewayError:
    # Fail closed: a budget that cannot be checked is not a budget that allows. 503 with
    # retry-after makes the official SDKs retry on their own.
    return GatewayError(
        503,
        "service_unavailable",
        f"spendgate cannot check this request against its budgets and rate limits right now ({reason[:200]});"
        " nothing was sent upstream, retry shortly",
        code="enforcement_unavailable",
        headers=((b"retry-after", b"1"),),
    )


# Where each dimension a policy can require is set on a request.
_DIMENSION_HEADERS = {
    "project": "x-spendgate-project",
    "team": "x-spendgate-team",
    "feature": "x-spendgate-feature",
    "customer": "x-spendgate-customer",
    "trace": "x-spendgate-trace-id",
}


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def policy_message(environment: str, missing: list[str]) -> str:
    """The 400's message, e.g. "this request lacks customer and tag:agent, which the policy
    for production keys requires; set x-spendgate-customer and x-spendgate-tags: agent=…"."""
    headers = [_DIMENSION_HEADERS[dim] for dim in missing if dim in _DIMENSION_HEADERS]
    tags = [f"{dim.removeprefix('tag:')}=…" for dim in missing if dim.startswith("tag:")]
    if tags:
        headers.append(f"x-spendgate-tags: {', '.join(tags)}")
    where = f"; set {_and(headers)}" if headers else ""
    return f"this request lacks {_and(missing)}, which the policy for {environment} keys requires{where}"


def refusal_error(refusal: Refusal) -> GatewayError:
    """Budget, rate-limit and policy refusals, saying exactly which rule refused and why."""
    if isinstance(refusal, PolicyViolation):
        return invalid_request(policy_message(refusal.environment, refusal.missing))
    if isinstance(refusal, TokensNeverFit):
        return _never_fits(refusal)
    if isinstance(refusal, ScopeSuspended):
        because = f" after anomaly {refusal.anomaly_id}" if refusal.anomaly_id else ""
        return permission_denied(
            f"{refusal.scope} is suspended{because}; an admin resumes it with `spendgate suspensions resume "
            f"{refusal.scope}`",
            code="scope_suspended",
        )
    if isinstance(refusal, RateLimited):
        return _rate_limited(refusal)
    assert isinstance(refusal, BudgetExceeded)
    return _budget_exceeded(refusal)


def _never_fits(refusal: TokensNeverFit) -> GatewayError:
    # Not a 429: retrying cannot help, and the SDKs retry a 429 on their own.
    input_tokens = refusal.tokens - refusal.output_tokens
    room = refusal.tpm - input_tokens
    advice = (
        f"set max_tokens (max_completion_tokens, max_output_tokens) to at most {room}, counting every answer of n"
        if room > 0
        else "send less input"
    )
    error = invalid_request(
        f"this request can never pass the token rate limit on {refusal.scope} ({refusal.tpm} tokens a minute): "
        f"it counts as {refusal.tokens} tokens, about {input_tokens} of input and up to {refusal.output_tokens} of "
        f"output; {advice}, or raise the limit"
    )
    details = {"rate_limit": {"scope": refusal.scope, "limit": "tpm", "tpm": refusal.tpm, "tokens": refusal.tokens}}
    return GatewayError(error.status, error.type, error.message, code="tokens_exceed_rate_limit", details=details)


def _rate_limited(refusal: RateLimited) -> GatewayError:
    seconds = max(1, math.ceil(refusal.retry_after))
    what = "requests" if refusal.kind == "rpm" else "tokens"
    of = f" ({refusal.limit} {what} a minute)" if refusal.limit is not None else ""
    return GatewayError(
        429,
        "rate_limit_exceeded",
        f"rate limit on {refusal.scope} reached: its {refusal.kind}{of} is used up for this minute; "
        f"retry in {seconds}s",
        headers=((b"retry-after", str(seconds).encode()),),
        details={"rate_limit": {"scope": refusal.scope, "limit": refusal.kind, refusal.kind: refusal.limit}},
    )


def approval_required(refusal: BudgetExceeded, approval_id: str) -> GatewayError:
    """An exhausted ``on_exhausted = approve`` budget: the 402, with the approval to ask for."""
    error = _budget_exceeded(refusal)
    message = (
        f"{error.message}; approval {approval_id} is pending: an approver grants extra spend with "
        f"`spendgate approvals approve {approval_id} --extra USD --reason TEXT`"
    )
    details = {**(error.details or {}), "approval": {"id": approval_id, "status": "pending"}}
    return GatewayError(402, "budget_exceeded", message, code="approval_required", details=details)


def _budget_exceeded(refusal: BudgetExceeded) -> GatewayError:
    budget, window = refusal.budget, refusal.window
    resets = window.end.strftime("%Y-%m-%dT%H:%M:%SZ") if window.end else None
    when = f"it resets {resets}" if resets else "it never resets (a lifetime budget)"
    name = f"budget {budget.name!r} ({budget.scope}, {budget.period})"
    limit, spent, reserved = format_usd(budget.limit_usd), format_usd(refusal.spent), format_usd(refusal.reserved)
    remaining, requested = format_usd(refusal.remaining), format_usd(refusal.requested)
    extra, effective = format_usd(refusal.approved_extra), format_usd(refusal.effective_limit)
    # With extra spend approved for the window, the limit that counts is the effective one.
    of_limit = f"${limit} limit" if not refusal.approved_extra else f"${effective} limit (${limit} + ${extra} approved)"
    if refusal.exhausted:
        message = (
            f"{name} is exhausted: spent ${spent} of its {of_limit}, with ${reserved} in flight; "
            f"what is left is less than a request costs; {when}"
        )
    else:
        in_flight = f", ${reserved} of it held by requests in flight," if refusal.reserved else ""
        message = (
            f"{name} has ${remaining} left of its {of_limit} (spent ${spent}{in_flight}) and this request "
            f"could cost up to ${requested}: lower max_tokens (max_completion_tokens, max_output_tokens) or n "
            f"so its worst case fits"
            + (", or retry when the requests in flight have finished" if refusal.reserved else "")
            + f"; {when}"
        )
    details = {
        "budget": {
            "name": budget.name,
            "scope": str(budget.scope),
            "period": budget.period,
            "limit_usd": limit,
            "approved_extra_usd": extra,
            "effective_limit_usd": effective,
            "spent_usd": spent,
            "reserved_usd": reserved,
            "remaining_usd": remaining,
            "requested_usd": requested,
            "reason": "exhausted" if refusal.exhausted else "request_exceeds_remaining",
            "resets_at": resets,
        }
    }
    return GatewayError(402, "budget_exceeded", message, details=details)
