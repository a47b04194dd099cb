"""The suite itself: no test reaches a Redis database other than the one it was given.

Several test runs share one Redis server, each on its own database (SPENDGATE_TEST_REDIS_URL,
read by the ``redis_url`` fixture in conftest.py). A test that hard-codes a database number,
a host:port or a URL of its own would flush or read another run's counters, so every Redis
URL, ``db=`` and ``select()`` in tests/ is refused here unless the line says why it is not a
connection of its own (a ``# redis-hygiene: <reason>`` comment).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

TESTS = Path(__file__).parent
MARKER = "# redis-hygiene:"
# A URL that could reach a server: one naming a port or a database number (or a hole for one).
_URL = re.compile(r"(rediss?|unix)://[^\s\"']*?(:(\d|\{\})|/(\d|\{\}))", re.IGNORECASE)
_REDIS_CALLS = {"Redis", "StrictRedis", "from_url", "ConnectionPool", "RedisCluster"}


def _text(node: ast.AST) -> str | None:
    """A string literal's text, an f-string's with ``{}`` for each hole."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    return None


def _call_name(node: ast.Call) -> str:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def violations(source: str, filename: str = "<test>") -> list[str]:
    """Where ``source`` names a Redis database, URL or address of its own (pure, for the test)."""
    lines = source.splitlines()
    found: list[tuple[int, str]] = []
    tree = ast.parse(source, filename)
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            # Its parts are visited too: judge the whole f-string once, not its pieces.
            for part in node.values:
                part._hygiene_seen = True  # type: ignore[attr-defined]
        text = None if getattr(node, "_hygiene_seen", False) else _text(node)
        if text is not None and _URL.search(text):
            found.append((node.lineno, f"a Redis URL literal {text!r}"))
        if isinstance(node, ast.Call):
            name = _call_name(node)
            for keyword in node.keywords:
                if keyword.arg == "db" and name in _REDIS_CALLS:
                    found.append((node.lineno, f"{name}(db=…)"))
                if keyword.arg in ("host", "port") and name in _REDIS_CALLS:
                    found.append((node.lineno, f"{name}({keyword.arg}=…)"))
            func = node.func
            # select.select() is the socket module's; any other .select(n) picks a database.
            from_select_module = not isinstance(func, ast.Attribute) or getattr(func.value, "id", None) == "select"
            if name in ("select", "swapdb") and node.args and not from_select_module:
                found.append((node.lineno, f".{name}() of a Redis database"))
    return [
        f"{filename}:{line}: {what}"
        for line, what in sorted(set(found))
        if MARKER not in lines[line - 1] and MARKER not in (lines[line - 2] if line > 1 else "")
    ]


def test_no_test_picks_a_redis_database_of_its_own() -> None:
    problems = []
    for path in sorted(TESTS.rglob("*.py")):
        if path.name == Path(__file__).name:
            continue
        problems += violations(path.read_text(encoding="utf-8"), str(path.relative_to(TESTS.parent)))
    assert not problems, (
        "tests must reach Redis only through the redis_url fixture (SPENDGATE_TEST_REDIS_URL); "
        f"or say why a line is not a connection with '{MARKER} <reason>':\n" + "\n".join(problems)
    )


def test_the_check_catches_what_it_is_for() -> None:
    bad = """
import redis
a = redis.Redis.from_url("redis://127.0.0.1:6379/3")
b = redis.Redis(host="localhost", port=6379, db=2)
c = f"redis://localhost:{port}/0"
client.select(4)
"""
    found = violations(bad)
    assert [line.split(":")[1] for line in found] == ["3", "4", "4", "4", "5", "6"], found
    good = """
import select
url = redis_url
client = redis.Redis.from_url(redis_url)
ready = select.select([], [], [], 0)
x = "redis://:s3cret@cache:6379/0"  # redis-hygiene: a string to redact, never connected to
"""
    assert violations(good) == []
