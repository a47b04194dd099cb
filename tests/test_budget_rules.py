"""Budget arithmetic, pure: scopes, calendar windows in a timezone, estimates, policies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from spendgate.attribution import Attribution
from spendgate.budgets.estimate import IMAGE_RESERVE_TOKENS, context_window, max_output_tokens, reservation_tokens
from spendgate.budgets.model import Budget, BudgetError, Policy, RateLimit, Scope, parse_alerts, parse_limit
from spendgate.budgets.rules import Rules
from spendgate.budgets.windows import WindowCache, window_for

OWNER = Attribution(
    project="checkout",
    team="payments",
    cost_center=None,
    environment="production",
    key="web",
    feature="refunds",
    customer="acme",
    trace_id=None,
    tags={"agent": "copilot"},
)


@pytest.mark.parametrize(
    ("text", "matches"),
    [
        ("org", True),
        ("team:payments", True),
        ("team:growth", False),
        ("project:checkout", True),
        ("key:web", True),
        ("customer:acme", True),
        ("customer:globex", False),
        ("feature:refunds", True),
        ("tag:agent=copilot", True),
        ("tag:agent=other", False),
        ("tag:tier=gold", False),
    ],
)
def test_scopes_match_the_owner(text: str, matches: bool) -> None:
    scope = Scope.parse(text)
    assert str(scope) == text
    assert scope.matches(OWNER) is matches


@pytest.mark.parametrize("bad", ["", "teams:x", "team:", "tag:novalue", "tag:=x", "colour:red"])
def test_bad_scopes_are_refused(bad: str) -> None:
    with pytest.raises(BudgetError):
        Scope.parse(bad)


def test_limits_and_alerts_parse_exactly() -> None:
    assert parse_limit("99.50") == Decimal("99.50")
    for bad in ("0", "-1", "abc", "NaN", "Infinity"):
        with pytest.raises(BudgetError):
            parse_limit(bad)
    assert parse_alerts(None) == (50, 80, 100)
    assert parse_alerts("100, 50,80,50") == (50, 80, 100)
    assert parse_alerts("") == ()
    with pytest.raises(BudgetError):
        parse_alerts("fifty")
    with pytest.raises(BudgetError):
        Budget(name="b", scope=Scope.parse("org"), limit_usd=Decimal(1), period="fortnight")
    with pytest.raises(BudgetError):
        RateLimit(Scope.parse("org"))


def test_day_week_month_windows_in_a_timezone() -> None:
    at = datetime(2026, 11, 23, 23, 30, tzinfo=UTC)  # Tuesday 24th already in Tokyo
    day = window_for("day", "Asia/Tokyo", at)
    assert day.key == "2026-11-24"
    assert (day.start, day.end) == (datetime(2026, 11, 23, 15, tzinfo=UTC), datetime(2026, 11, 24, 15, tzinfo=UTC))
    week = window_for("week", "UTC", at)
    assert week.key == "2026-W48" and week.start == datetime(2026, 11, 23, tzinfo=UTC)
    assert week.end - week.start == timedelta(days=7)
    month = window_for("month", "America/New_York", datetime(2026, 12, 1, 3, tzinfo=UTC))
    assert month.key == "2026-11"  # still November in New York
    assert month.end == datetime(2026, 12, 1, 5, tzinfo=UTC)
    total = window_for("total", "UTC", at)
    assert (total.key, total.start, total.end) == ("total", None, None)
    assert total.contains(at) and day.contains(day.start) and not day.contains(day.end)


def test_a_day_with_a_dst_change_is_23_or_25_hours_long() -> None:
    spring = window_for("day", "Europe/Paris", datetime(2026, 3, 29, 12, tzinfo=UTC))
    assert spring.end - spring.start == timedelta(hours=23)
    autumn = window_for("day", "Europe/Paris", datetime(2026, 10, 25, 12, tzinfo=UTC))
    assert autumn.end - autumn.start == timedelta(hours=25)


def test_consecutive_windows_tile_time() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    for period in ("day", "week", "month"):
        window = window_for(period, "Australia/Sydney", at)
        for _ in range(30):
            following = window_for(period, "Australia/Sydney", window.end)
            assert following.start == window.end and following.key != window.key
            window = following


def test_a_cached_window_is_reused_only_until_it_ends() -> None:
    cache = WindowCache()
    at = datetime(2026, 10, 24, 22, 30, tzinfo=UTC)  # Sunday 25th in Paris: 25 hours (DST ends)
    day = cache.get("day", "Europe/Paris", at)
    assert day == window_for("day", "Europe/Paris", at) and day.end - day.start == timedelta(hours=25)
    assert cache.get("day", "Europe/Paris", day.end - timedelta(microseconds=1)) is day  # resolved once
    following = cache.get("day", "Europe/Paris", day.end)  # the instant it ends: not reused
    assert following.key == "2026-10-26" and following.start == day.end
    assert following == window_for("day", "Europe/Paris", day.end)
    assert cache.get("day", "Europe/Paris", day.end - timedelta(microseconds=1)) == day  # a clock gone back
    # Each (period, timezone) has its own window.
    assert cache.get("day", "Asia/Tokyo", day.end).key == "2026-10-26"
    assert cache.get("month", "Europe/Paris", day.end).key == "2026-10"
    assert cache.get("total", "UTC", at) == window_for("total", "UTC", at)
    walked = datetime(2026, 1, 1, tzinfo=UTC)
    for _ in range(400):  # a year in steps of 23 h, against the uncached windows
        for period in ("day", "week", "month"):
            assert cache.get(period, "America/New_York", walked) == window_for(period, "America/New_York", walked)
        walked += timedelta(hours=23)


def test_rules_pick_what_applies() -> None:
    rules = Rules(
        budgets=(
            Budget(name="a", scope=Scope.parse("team:payments"), limit_usd=Decimal(1)),
            Budget(name="b", scope=Scope.parse("team:growth"), limit_usd=Decimal(1)),
            Budget(name="c", scope=Scope.parse("tag:agent=copilot"), limit_usd=Decimal(1)),
        ),
        limits=(RateLimit(Scope.parse("org"), rpm=10),),
        policies={"production": Policy("production", ("feature", "customer", "trace", "tag:agent"))},
    )
    assert [b.name for b in rules.budgets_for(OWNER)] == ["a", "c"]
    assert len(rules.limits_for(OWNER)) == 1
    assert rules.missing_dimensions(OWNER) == ["trace"]
    with pytest.raises(BudgetError):
        Policy("production", ("colour",))


def test_reservation_estimate_is_an_upper_bound_on_output_and_generous_on_input() -> None:
    body = {"messages": [{"role": "user", "content": "x" * 300}], "max_tokens": 50}
    input_tokens, output_tokens = reservation_tokens("chat", "gpt-4o", body)
    assert output_tokens == 50
    assert input_tokens >= 300 // 3
    assert max_output_tokens("gpt-4o-2024-08-06", {}) == 16_384
    assert max_output_tokens("gpt-4.1-mini", {}) == 32_768
    assert max_output_tokens("o3-mini", {"max_completion_tokens": 7}) == 7
    assert max_output_tokens("mystery-model", {}) == 16_384
    assert reservation_tokens("embeddings", "text-embedding-3-small", {"input": "abc"})[1] == 0


BASE64_IMAGE = "data:image/png;base64," + "iVBORw0KGgo" * 30_000  # ~330 KB of base64


@pytest.mark.parametrize(
    "body",
    [
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": BASE64_IMAGE}}]}]},
        {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": BASE64_IMAGE}]}]},
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": BASE64_IMAGE}}
                    ],
                }
            ]
        },
    ],
    ids=["chat", "responses", "anthropic"],
)
def test_an_image_reserves_a_fixed_ceiling_not_its_base64_length(body: dict) -> None:
    input_tokens, _ = reservation_tokens("chat", "gpt-4o", body)
    assert IMAGE_RESERVE_TOKENS <= input_tokens < IMAGE_RESERVE_TOKENS + 50  # not ~110,000 tokens of "text"


@pytest.mark.parametrize(
    ("model", "body"),
    [
        ("gpt-4.1", {"input": "continue", "previous_response_id": "resp_123"}),
        ("gpt-4.1", {"input": "hi", "conversation": "conv_123"}),
        ("gpt-4.1", {"prompt": {"id": "pmpt_123", "variables": {"city": "Paris"}}}),
        ("gpt-4.1", {"input": [{"type": "item_reference", "id": "msg_123"}]}),
        ("gpt-4o", {"messages": [{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-1"}}]}]}),
        ("gpt-4o", {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "file-1"}]}]}),
        (
            "gpt-4o",
            {"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "AAA"}}]}]},
        ),
        (
            "claude-3-5-haiku",
            {
                "messages": [
                    {"role": "user", "content": [{"type": "document", "source": {"type": "file", "file_id": "f"}}]}
                ]
            },
        ),
    ],
)
def test_input_the_request_does_not_carry_reserves_the_context_window(model: str, body: dict) -> None:
    input_tokens, _ = reservation_tokens("responses", model, body)
    assert input_tokens == context_window(model)


def test_text_documents_are_measured_and_text_is_capped_at_the_context_window() -> None:
    document = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "y" * 3_000}}
    input_tokens, _ = reservation_tokens(
        "messages", "claude-3-5-haiku", {"messages": [{"role": "user", "content": [document]}]}
    )
    assert 1_000 <= input_tokens < 1_100
    huge = {"messages": [{"role": "user", "content": "z" * 100_000}]}
    assert reservation_tokens("chat", "gpt-4", huge)[0] == 8_192  # gpt-4 reads no more than that
    assert context_window("gpt-4.1-mini-2025-04-14") == 1_047_576
    assert context_window("claude-sonnet-4-5") == 1_000_000
    assert context_window("mystery-model") == 1_000_000


def test_non_ascii_text_reserves_more_than_a_third_of_a_token_a_character() -> None:
    def reserved(text: str) -> int:
        return reservation_tokens("chat", "gpt-4o", {"messages": [{"role": "user", "content": text}]})[0]

    framing = reserved("")
    assert reserved("a" * 3_000) - framing == 1_000
    assert reserved("预算" * 1_500) - framing == 7_000  # 3,000 CJK characters: ~2.3 tokens each
    assert reserved("é" * 3_000) - framing == 4_000  # 2 UTF-8 bytes: 1 + 1/3
    assert reserved("🙂" * 300) - framing == 1_000  # 4 UTF-8 bytes: 3 + 1/3


def test_every_answer_asked_for_is_reserved() -> None:
    chat = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 100, "n": 20}
    assert reservation_tokens("chat", "gpt-4o", chat)[1] == 2_000
    assert reservation_tokens("chat", "gpt-4o", {**chat, "max_tokens": None})[1] == 20 * 16_384  # no cap: the model's
    legacy = {"prompt": "hi", "max_tokens": 50, "n": 2, "best_of": 5}  # generates 5, returns 2
    assert reservation_tokens("completions", "gpt-3.5-turbo-instruct", legacy)[1] == 250
    assert reservation_tokens("chat", "gpt-4o", {**chat, "n": "20"})[1] == 100  # refused upstream
    assert reservation_tokens("responses", "gpt-4o", {"input": "hi", "max_output_tokens": 100, "n": 5})[1] == 100


def test_tiny_requests_reserve_the_framing_providers_bill() -> None:
    """OpenAI bills 3 tokens per message, 1 per name, 3 to prime the reply: "hi" from a user is
    8 tokens billed (3 + "user" + "hi" + 3), more than the text's own estimate."""

    def reserved(body: dict) -> int:
        return reservation_tokens("chat", "gpt-4o", body)[0]

    hi = {"messages": [{"role": "user", "content": "hi"}]}
    # "user" and "hi" (a whole token, however short) at three characters a token, a message, the priming
    assert reserved(hi) == 3 + 4 + 3
    two = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "name": "ana", "content": "a"}]}
    assert reserved(two) >= (3 + 2 + 3) + (3 + 1 + 1 + 1 + 1) + 3
    anthropic = {"system": "You are a scientist", "messages": [{"role": "user", "content": "Hello, Claude"}]}
    assert reservation_tokens("messages", "claude-haiku-4-5", anthropic)[0] >= 14  # Anthropic's count for it
