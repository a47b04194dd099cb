"""How deeply a request body may nest (pure).

Every provider request is shallow: a chat body is about six levels deep (body, messages, a
message, its content parts, a part, an image's ``image_url``), and the deepest legitimate
shapes are JSON Schemas in ``tools`` and ``response_format`` (OpenAI's structured outputs
allow ten levels of schema nesting, about 25 levels of JSON). ``MAX_DEPTH`` is more than
twice that, and far below what breaks anything downstream: ``orjson.dumps`` refuses 255
levels, Python's recursion stops near 1,000 and ``orjson.loads`` at 1,024. A body nested
deeper is refused before anything is reserved or sent, so no code after admission can fail
on it.
"""

from __future__ import annotations

from typing import Any

MAX_DEPTH = 64


def deeper_than(raw: bytes, body: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether ``body`` (parsed from ``raw``) nests more than ``limit`` arrays and objects.

    A body can only be as deep as it has opening brackets, so most bodies are cleared by two
    byte counts (C speed, brackets inside strings included: that only errs towards the
    exact check). Only a body with more brackets than ``limit`` is walked, level by level,
    without recursion."""
    if raw.count(b"{") + raw.count(b"[") <= limit:
        return False
    return _deeper_than(body, limit)


def _deeper_than(value: Any, limit: int) -> bool:
    level = [value] if type(value) in (dict, list) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        below = []
        for container in level:
            for item in container.values() if type(container) is dict else container:
                kind = type(item)
                if kind is dict or kind is list:
                    below.append(item)
        level = below
    return False
