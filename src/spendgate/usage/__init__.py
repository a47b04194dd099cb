"""Provider responses and streams -> normalized ``Usage`` (pure parsing, no I/O)."""

from spendgate.usage.anthropic import MessagesStreamObserver, anthropic_response_usage, anthropic_usage
from spendgate.usage.estimate import estimate_input_tokens, tokens_for_chars
from spendgate.usage.model import Usage
from spendgate.usage.openai import (
    ChatStreamObserver,
    ResponsesStreamObserver,
    openai_response_usage,
    openai_usage,
)
from spendgate.usage.service_tier import STANDARD, normalize_service_tier, request_service_tier
from spendgate.usage.sse import SSESplitter, Unparsed, event_fields

__all__ = [
    "STANDARD",
    "ChatStreamObserver",
    "MessagesStreamObserver",
    "ResponsesStreamObserver",
    "SSESplitter",
    "Unparsed",
    "Usage",
    "anthropic_response_usage",
    "anthropic_usage",
    "estimate_input_tokens",
    "event_fields",
    "normalize_service_tier",
    "openai_response_usage",
    "openai_usage",
    "request_service_tier",
    "tokens_for_chars",
]
