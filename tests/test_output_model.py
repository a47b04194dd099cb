"""Learned output reservations and the overspend they allow (pure)."""

from __future__ import annotations

import math
import random
from decimal import Decimal

import pytest

from spendgate.budgets.estimate import max_output_tokens
from spendgate.budgets.output_model import (
    LEARNED,
    STRICT,
    OutputModelParams,
    expected_overspend,
    learned_tokens,
    output_reservation,
    reservation_table,
    worst_case_overspend,
)

PARAMS = OutputModelParams()
GPT4O_OUTPUT = Decimal("0.00001")  # $10 per million output tokens
STRICT_GPT4O = max_output_tokens("gpt-4o", {})  # 16,384


def answers(rng: random.Random, n: int) -> list[int]:
    """Output tokens of chat answers: log-normal around 350 tokens, a long tail."""
    return [min(int(rng.lognormvariate(math.log(350), 0.8)), STRICT_GPT4O) for _ in range(n)]


def test_the_learned_percentile_is_exceeded_by_about_one_request_in_a_hundred() -> None:
    exceeded = trials = 0
    for seed in range(20):
        rng = random.Random(seed)
        learned = learned_tokens(answers(rng, 500), STRICT_GPT4O, PARAMS)
        assert learned is not None and 1_000 < learned < STRICT_GPT4O // 4
        fresh = answers(rng, 10_000)
        exceeded += sum(count > learned for count in fresh)
        trials += len(fresh)
    assert 0.005 < exceeded / trials < 0.015


def test_the_percentile_is_the_distribution_free_order_statistic() -> None:
    samples = list(range(1, 201))  # 1..200
    # k = ceil(0.99 x 201) = 199: two of 200 samples lie above it.
    assert learned_tokens(samples, 10_000, PARAMS) == 199
    assert learned_tokens(samples, 150, PARAMS) == 150  # never above the strict bound
    assert learned_tokens(samples[:199], 10_000, PARAMS) is None  # too few to learn from
    assert learned_tokens([5] * 100, 10_000, OutputModelParams(min_samples=100)) == 5


def test_a_request_cap_wins_and_strict_stays_the_default() -> None:
    rng = random.Random(1)
    samples = {("gpt-4o", "checkout"): answers(rng, 300), ("gpt-4o", "search"): answers(rng, 50)}
    table = reservation_table(samples, {"gpt-4o": STRICT_GPT4O}, PARAMS)
    assert ("gpt-4o", "search") not in table  # 50 samples: learns nothing of its own
    assert ("gpt-4o", "checkout") in table and ("gpt-4o", None) in table
    assert output_reservation(table, "gpt-4o", "checkout", STRICT_GPT4O) == STRICT_GPT4O
    learned = output_reservation(table, "gpt-4o", "checkout", STRICT_GPT4O, mode=LEARNED)
    assert learned == table["gpt-4o", "checkout"] < STRICT_GPT4O
    # Search falls back to what gpt-4o writes across projects; an unknown model to strict.
    assert output_reservation(table, "gpt-4o", "search", STRICT_GPT4O, mode=LEARNED) == table["gpt-4o", None]
    assert output_reservation(table, "o3", "search", 100_000, mode=LEARNED) == 100_000
    assert output_reservation(table, "gpt-4o", "checkout", STRICT_GPT4O, request_cap=64, mode=LEARNED) == 64
    assert output_reservation(table, "gpt-4o", None, STRICT_GPT4O, request_cap=20_000, mode=STRICT) == 20_000


def admit_and_settle(limit: Decimal, reserve: Decimal, costs: list[Decimal]) -> list[Decimal]:
    """The gate's arithmetic with everything in flight at once: admit while the
    reservations held plus this one stay within the limit; return what the admitted cost."""
    admitted: list[Decimal] = []
    for cost in costs:
        if (len(admitted) + 1) * reserve <= limit:
            admitted.append(cost)
    return admitted


def test_the_worst_case_overspend_holds_and_is_reached() -> None:
    limit = Decimal(2)
    learned = 1_000
    reserve = learned * GPT4O_OUTPUT  # the input side left out: it is known up front
    # Every admitted request runs to the model's maximum: the worst case, exactly.
    admitted = admit_and_settle(limit, reserve, [STRICT_GPT4O * GPT4O_OUTPUT] * 1_000)
    assert len(admitted) == 2_000 // 10 == 200
    bound = worst_case_overspend(len(admitted), STRICT_GPT4O, learned, GPT4O_OUTPUT)
    assert sum(admitted) - limit == bound == Decimal("30.768")
    # Strict mode admits 12 ($0.16384 each) and cannot overspend.
    strict = admit_and_settle(limit, STRICT_GPT4O * GPT4O_OUTPUT, [STRICT_GPT4O * GPT4O_OUTPUT] * 1_000)
    assert len(strict) == 12 and sum(strict) <= limit
    assert worst_case_overspend(12, STRICT_GPT4O, STRICT_GPT4O, GPT4O_OUTPUT) == 0
    # Drawn like real answers: never past the bound, and on average what was expected.
    rng = random.Random(7)
    history = answers(rng, 2_000)
    learned = learned_tokens(history, STRICT_GPT4O, PARAMS)
    assert learned is not None
    reserve = learned * GPT4O_OUTPUT
    excesses = []
    for _ in range(300):
        admitted = admit_and_settle(limit, reserve, [count * GPT4O_OUTPUT for count in answers(rng, 1_000)])
        assert sum(admitted) - limit <= worst_case_overspend(len(admitted), STRICT_GPT4O, learned, GPT4O_OUTPUT)
        excesses.append(sum((max(cost - reserve, Decimal(0)) for cost in admitted), Decimal(0)))
    mean = sum(excesses, Decimal(0)) / len(excesses)
    expected = expected_overspend(history, len(admitted), learned, GPT4O_OUTPUT)
    assert expected / 2 < mean < expected * 2
    assert expected < worst_case_overspend(len(admitted), STRICT_GPT4O, learned, GPT4O_OUTPUT) / 100


def test_params_are_checked() -> None:
    with pytest.raises(ValueError):
        OutputModelParams(percentile=Decimal(1))
    with pytest.raises(ValueError):
        OutputModelParams(min_samples=0)
