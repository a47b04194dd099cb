"""The provider endpoints the gateway serves, and what each one is."""

from __future__ import annotations

from dataclasses import dataclass

from spendgate.gateway.errors import ANTHROPIC, OPENAI


@dataclass(frozen=True, slots=True)
class Route:
    path: str
    method: str
    family: str  # error shape and native provider: openai or anthropic
    kind: str  # chat, completions, responses, embeddings, messages, count_tokens, models
    billed: bool = True


ROUTES: dict[str, Route] = {
    r.path: r
    for r in (
        Route("/v1/chat/completions", "POST", OPENAI, "chat"),
        Route("/v1/completions", "POST", OPENAI, "completions"),
        Route("/v1/responses", "POST", OPENAI, "responses"),
        Route("/v1/embeddings", "POST", OPENAI, "embeddings"),
        Route("/v1/models", "GET", OPENAI, "models", billed=False),
        Route("/v1/messages", "POST", ANTHROPIC, "messages"),
        Route("/v1/messages/count_tokens", "POST", ANTHROPIC, "count_tokens", billed=False),
    )
}

# Streams whose usage OpenAI only sends when asked with stream_options.include_usage.
INCLUDE_USAGE_KINDS = frozenset({"chat", "completions"})
