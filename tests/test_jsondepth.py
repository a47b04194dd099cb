"""The request body depth limit (pure)."""

from __future__ import annotations

import orjson

from spendgate.jsondepth import MAX_DEPTH, deeper_than


def _body(levels: int) -> bytes:
    """An object nesting ``levels`` containers in all (alternating objects and arrays)."""
    raw = b"1"
    for level in range(levels):
        raw = b'{"x":' + raw + b"}" if level % 2 else b"[" + raw + b"]"
    return raw


def test_the_limit_is_exact() -> None:
    for levels in (1, 2, MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, 300, 1000):
        raw = _body(levels)
        assert deeper_than(raw, orjson.loads(raw)) is (levels > MAX_DEPTH), levels


def test_many_shallow_containers_and_brackets_in_strings_are_not_depth() -> None:
    wide = {"messages": [{"role": "user", "content": [{"type": "text", "text": "{[" * 500}]} for _ in range(200)]}
    raw = orjson.dumps(wide)
    assert raw.count(b"{") > MAX_DEPTH
    assert deeper_than(raw, wide) is False
    assert deeper_than(b'"{{{{"', "{{{{", limit=2) is False
