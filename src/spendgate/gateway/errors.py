"""Refusals in the provider's own error shape, so SDKs raise their usual exceptions.

OpenAI: ``{"error": {"message", "type", "code"}}``;
Anthropic: ``{"type": "error", "error": {"type", "message"}}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

OPENAI = "openai"
ANTHROPIC = "anthropic"


@dataclass(frozen=True)
class GatewayError(Exception):
    status: int
    type: str
    message: str
    code: str | None = None
    headers: tuple[tuple[bytes, bytes], ...] = field(default=())
    details: dict | None = None

    def body(self, shape: str) -> bytes:
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


def request_too_large(limit: int) -> GatewayError:
    return GatewayError(
        413, "request_too_large", f"request body is larger than the gateway's limit of {limit} bytes"
    )


def not_found(path: str) -> GatewayError:
    return GatewayError(404, "not_found_error", f"spendgate does not serve {path}")


def method_not_allowed(method: str, path: str) -> GatewayError:
    return GatewayError(405, "invalid_request_error", f"{method} is not allowed on {path}")


def upstream_unreachable(provider: str, reason: str) -> GatewayError:
    return GatewayError(502, "upstream_error", f"could not reach {provider}: {reason}")


def upstream_timeout(provider: str, seconds: float) -> GatewayError:
    return GatewayError(504, "upstream_error", f"{provider} did not answer within {seconds:g}s")
