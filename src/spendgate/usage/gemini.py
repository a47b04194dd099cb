"""Usage as Gemini reports it (``generateContent`` / ``streamGenerateContent``), streamed or not.

Gemini's ``usageMetadata``: ``promptTokenCount`` INCLUDES ``cachedContentTokenCount`` (as OpenAI's
``prompt_tokens`` does); ``candidatesTokenCount`` EXCLUDES the thinking tokens, reported apart as
``thoughtsTokenCount`` and billed as output; ``toolUsePromptTokenCount`` (input the model read
from its tools' results) is billed as input. So, normalized: input = prompt + tool-use prompt,
cached = cached content, output = candidates + thoughts, reasoning = thoughts.

A stream (``?alt=sse``) is a series of ``GenerateContentResponse`` objects, each with the usage
so far; the last carries the final figures and a candidate's ``finishReason``. Without
``alt=sse`` the same objects come as one JSON array.
"""

from __future__ import annotations

from typing import Any

import orjson

from spendgate.usage.bounds import MAX_INPUT_TOKENS, MAX_OUTPUT_TOKENS, token_count
from spendgate.usage.model import Anomaly, Usage
from spendgate.usage.sse import event_fields


def gemini_usage(meta: Any) -> Usage | None:
    if not isinstance(meta, dict) or ("promptTokenCount" not in meta and "candidatesTokenCount" not in meta):
        return None
    anomalies: list[Anomaly] = []

    def count(field: str, ceiling: int) -> int:
        return token_count(meta.get(field), field, ceiling, anomalies)

    prompt = count("promptTokenCount", MAX_INPUT_TOKENS)
    tool_prompt = count("toolUsePromptTokenCount", MAX_INPUT_TOKENS)
    thoughts = count("thoughtsTokenCount", MAX_OUTPUT_TOKENS)
    return Usage(
        input_tokens=prompt + tool_prompt,
        cached_input_tokens=min(count("cachedContentTokenCount", MAX_INPUT_TOKENS), prompt + tool_prompt),
        output_tokens=count("candidatesTokenCount", MAX_OUTPUT_TOKENS) + thoughts,
        reasoning_tokens=thoughts,
        anomalies=tuple(anomalies),
    )


def _model(chunk: dict[str, Any]) -> str | None:
    version = chunk.get("modelVersion")
    return version if isinstance(version, str) and version else None


def gemini_response_usage(body: Any) -> tuple[Usage | None, str | None]:
    """(usage, reported model) of a ``generateContent`` answer, or of a streamed answer sent
    as one JSON array (``streamGenerateContent`` without ``alt=sse``): its last usage."""
    chunks = body if isinstance(body, list) else [body]
    usage, model = None, None
    for chunk in chunks:
        if not isinstance(chunk, dict):
            continue
        usage = gemini_usage(chunk.get("usageMetadata")) or usage
        model = _model(chunk) or model
    return usage, model


def _finished(chunk: dict[str, Any]) -> bool:
    candidates = chunk.get("candidates")
    if not isinstance(candidates, list):
        return False
    unfinished = (None, "FINISH_REASON_UNSPECIFIED")
    return any(isinstance(c, dict) and c.get("finishReason") not in unfinished for c in candidates)


def _text_chars(chunk: dict[str, Any]) -> int:
    chars = 0
    for candidate in chunk.get("candidates") or ():
        content = candidate.get("content") if isinstance(candidate, dict) else None
        parts = content.get("parts") if isinstance(content, dict) else None
        for part in parts if isinstance(parts, list) else ():
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                chars += len(part["text"])
    return chars


class GeminiStreamObserver:
    """Watches a ``streamGenerateContent?alt=sse`` stream. Usage counts as reported once the
    chunk with a ``finishReason`` has arrived; before that, what the chunks said is partial
    (the prompt is exact, the output an estimate)."""

    __slots__ = ("_latest", "finished", "model", "output_chars", "usage")

    def __init__(self) -> None:
        self._latest: Usage | None = None
        self.usage: Usage | None = None
        self.model: str | None = None
        self.output_chars = 0
        self.finished = False

    @property
    def partial_usage(self) -> Usage | None:
        return self._latest

    def observe(self, raw_event: bytes) -> bool:
        _, data = event_fields(raw_event)
        if data is None:
            return True
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return True
        if not isinstance(chunk, dict):
            return True
        self.model = _model(chunk) or self.model
        self.output_chars += _text_chars(chunk)
        usage = gemini_usage(chunk.get("usageMetadata"))
        if usage is not None:
            self._latest = usage
        if _finished(chunk):
            self.finished = True
        if self.finished and self._latest is not None:
            self.usage = self._latest
        return True


def estimation_body(body: dict[str, Any]) -> dict[str, Any]:
    """A Gemini request in the fields the gateway's estimates read (messages, system, tools and
    the output cap), for its budget reservation and for an estimate should no usage come."""
    config = body.get("generationConfig", body.get("generation_config"))
    config = config if isinstance(config, dict) else {}
    view: dict[str, Any] = {}
    for source, target in (
        ("contents", "messages"),
        ("systemInstruction", "system"),
        ("system_instruction", "system"),
        ("tools", "tools"),
    ):
        if body.get(source) is not None:
            view[target] = body[source]
    if isinstance(view.get("messages"), (str, dict)):
        view["messages"] = [view["messages"]]
    cap = config.get("maxOutputTokens", config.get("max_output_tokens"))
    if isinstance(cap, int) and not isinstance(cap, bool):
        view["max_output_tokens"] = cap
    count = config.get("candidateCount", config.get("candidate_count"))
    if isinstance(count, int) and not isinstance(count, bool) and count > 1:
        view["n"] = count
    return view
