"""What every target is asked and what the static upstream answers: fixed bytes, the same for all."""

from __future__ import annotations

import json

MODEL = "gpt-4o-mini"
# The model name LiteLLM routes to the streaming path of the static upstream (LiteLLM passes no
# client header upstream, so it cannot ask for the stream the way the others do).
LITELLM_STREAM_MODEL = "gpt-4o-mini-sse"

REQUEST = {
    "model": MODEL,
    "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Say hello in one short sentence, please."},
    ],
    "max_tokens": 64,
}
REQUEST_BODY = json.dumps(REQUEST, separators=(",", ":"))

# A typical client asks for a stream without `stream_options`: spendgate then asks upstream
# for usage on the client's behalf (and withholds that chunk), which is part of what it costs.
STREAM_REQUEST = {**REQUEST, "stream": True}
STREAM_REQUEST_BODY = json.dumps(STREAM_REQUEST, separators=(",", ":"))

USAGE = {
    "prompt_tokens": 120,
    "completion_tokens": 20,
    "total_tokens": 140,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
}

COMPLETION = {
    "id": "chatcmpl-bench0000000000000000000000",
    "object": "chat.completion",
    "created": 1735689600,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello there, nice to meet you!", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": USAGE,
    "system_fingerprint": "fp_bench",
}
COMPLETION_BODY = json.dumps(COMPLETION, separators=(",", ":"))


def _chunk(delta: dict, finish: str | None = None, *, usage: dict | None = None, choices: bool = True) -> str:
    chunk = {
        "id": "chatcmpl-bench0000000000000000000000",
        "object": "chat.completion.chunk",
        "created": 1735689600,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_bench",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}] if choices else [],
    }
    if usage is not None:
        chunk["usage"] = usage
    return "data: " + json.dumps(chunk, separators=(",", ":")) + "\n\n"


SSE_BODY = (
    _chunk({"role": "assistant", "content": ""})
    + _chunk({"content": "Hello"})
    + _chunk({"content": " there,"})
    + _chunk({"content": " nice to meet you!"})
    + _chunk({}, "stop")
    + _chunk({}, usage=USAGE, choices=False)
    + "data: [DONE]\n\n"
)


def nginx_quoted(text: str) -> str:
    """``text`` as an nginx single-quoted string (nginx turns \\n back into a newline)."""
    if "$" in text:
        raise ValueError("nginx would expand '$' in a return string")
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"
