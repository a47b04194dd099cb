"""Shared-cost allocation (issue 12 item 2): for each method, on both backends, through the
CLI, the allocated report keeps the total to the last digit, empties the pool, and every
owner's line is its direct spend minus what it gave plus what it received (each received part
naming its rule, pool and source). Amounts come from hypothesis; each example writes into a
month of its own, so one ledger serves every example."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spendgate.finance.allocation import AllocationError, Pool, Rule, allocate, parse_targets, split
from spendgate.money import format_usd
from tests.finance_support import cli, cli_json, event, ledger, write  # noqa: F401  (ledger: a fixture)

amounts = st.decimals(min_value=Decimal("0.0000000001"), max_value=Decimal("5000"), places=10)
weight_values = st.decimals(min_value=0, max_value=10**6, places=6)
maybe = st.one_of(st.just(Decimal(0)), amounts)
_months = itertools.count()
SLOW = settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
RULES = {
    "proportional": ["--from", "unallocated", "--method", "proportional"],
    "even": ["--from", "team:platform", "--method", "even"],
    "fixed": ["--from", "tag:shared=yes", "--method", "fixed", "--to", "alpha=50,beta=33.3,gamma=16.7"],
}


def _month() -> tuple[datetime, str, str]:
    n = next(_months)
    year, month = 2000 + n // 12, n % 12 + 1
    last = 28
    return datetime(year, month, 3, tzinfo=UTC), f"{year}-{month:02d}-01", f"{year}-{month:02d}-{last}"


@pytest.mark.parametrize("method", list(RULES))
@SLOW
@given(alpha=amounts, beta=maybe, gamma=maybe, platform=maybe, nobody=maybe, shared=maybe, other=maybe)
def test_allocation_keeps_the_total_and_empties_the_pool(
    ledger: str,  # noqa: F811
    method: str,
    alpha: Decimal,
    beta: Decimal,
    gamma: Decimal,
    platform: Decimal,
    nobody: Decimal,
    shared: Decimal,
    other: Decimal,
) -> None:
    if not cli_json("allocations", "list", "--db", ledger)[:1]:
        cli("allocations", "create", "--name", method, *RULES[method], "--db", ledger)
        # A second pool for the proportional case: an other-cost category.
        if method == "proportional":
            cli("allocations", "create", "--name", "licenses", "--from", "category:licenses", "--method",
                "proportional", "--db", ledger)  # fmt: skip
    ts, since, until = _month()
    direct = {"alpha": alpha, "beta": beta, "gamma": gamma, "platform": platform, None: nobody}
    events = [event(ts, cost, team=team) for team, cost in direct.items() if cost]
    if shared:  # tagged spend of beta's: the fixed rule's pool
        events.append(event(ts, shared, team="beta", tags={"shared": "yes"}))
        direct["beta"] += shared
    if other:  # an other cost of gamma's: the category pool
        events.append(event(ts, other, team="gamma", model="licenses", provider="manual", source="manual"))
        direct["gamma"] += other
    write(ledger, events)
    total = sum(direct.values(), Decimal(0))

    out = cli_json("report", "--allocated", "--by", "team", "--since", since, "--until", until, "--db", ledger)
    rows = {row["team"]: row for row in out["rows"]}
    assert Decimal(out["total_cost_usd"]) == total
    assert sum(Decimal(r["cost_usd"]) for r in out["rows"]) == total  # nothing made or lost
    for owner, row in rows.items():
        assert Decimal(row["direct_cost_usd"]) == direct[owner]
        assert Decimal(row["cost_usd"]) == (
            direct[owner] - Decimal(row["allocated_out_usd"]) + Decimal(row["allocated_in_usd"])
        )
        assert Decimal(row["allocated_in_usd"]) == sum(Decimal(m["cost_usd"]) for m in row["allocated_from"])
    moved = sum(Decimal(r["allocated_in_usd"]) for r in out["rows"])
    assert moved == sum(Decimal(r["allocated_out_usd"]) for r in out["rows"])
    if method == "proportional":  # the unowned spend is gone, and so is the category's
        assert Decimal(rows.get(None, {"cost_usd": "0"})["cost_usd"]) == 0
        assert moved >= nobody + other
        owned = total - nobody
        expected = None if not total else format_usd((owned * 100 / total).quantize(Decimal("0.01")))
        assert out["allocation_coverage_percent"] == expected
    elif method == "even":
        assert Decimal(rows.get("platform", {"cost_usd": "0"})["cost_usd"]) == 0
        assert moved == platform
    else:
        assert moved == shared
        if shared:
            assert {m["pool"] for r in out["rows"] for m in r["allocated_from"]} == {"tag:shared=yes"}
            assert {m["from"] for r in out["rows"] for m in r["allocated_from"]} == {"beta"}


@settings(max_examples=300, deadline=None)
@given(
    amount=amounts,
    weights=st.dictionaries(
        st.sampled_from("abcdefgh"), st.decimals(min_value=0, max_value=10**6, places=6), min_size=1
    ),
)
def test_split_is_exact(amount: Decimal, weights: dict[str, Decimal]) -> None:
    if not sum(weights.values()):
        with pytest.raises(AllocationError):
            split(amount, weights)
        return
    shares = split(amount, weights)
    assert sum(shares.values()) == amount
    assert all(share >= 0 for share in shares.values())
    assert all(shares[o] == 0 for o, w in weights.items() if w == 0)


@settings(max_examples=300, deadline=None)
@given(
    method=st.sampled_from(["proportional", "even", "fixed"]),
    direct=st.dictionaries(st.sampled_from(["a", "b", "c", "p", None]), amounts, min_size=1),
)
def test_allocate_empties_each_pool_kind(method: str, direct: dict[str | None, Decimal]) -> None:
    targets = parse_targets("a=60,b=40" if method == "fixed" else None, method)
    rules = [
        Rule("u", Pool.parse("unallocated"), method, "team", targets),
        Rule("p", Pool.parse("team:p"), method, "team", targets),
    ]
    owners = {o for o in direct if o not in (None, "p")}
    if method != "fixed" and not owners:
        with pytest.raises(AllocationError):
            allocate(rules, direct, {})
        return
    outcome = allocate(rules, direct, {})
    assert sum(outcome.final.values()) == sum(direct.values())
    assert outcome.final.get(None, 0) == 0 and outcome.final.get("p", 0) == 0


def test_bad_rules_are_refused(ledger: str) -> None:  # noqa: F811
    from click.testing import CliRunner

    from spendgate.cli.main import main

    def refused(*args: str) -> str:
        result = CliRunner().invoke(main, ["allocations", "create", "--name", "r", *args, "--db", ledger])
        assert result.exit_code == 2, result.output
        return result.output

    assert "sum to 100" in refused("--from", "unallocated", "--method", "fixed", "--to", "alpha=50,beta=40")
    assert "bad pool" in refused("--from", "key:x", "--method", "even")
    assert "needs --to" in refused("--from", "unallocated", "--method", "fixed")
    assert "only a fixed rule" in refused("--from", "unallocated", "--method", "even", "--to", "alpha=5")
    cli("allocations", "create", "--name", "r", "--from", "unallocated", "--method", "even", "--db", ledger)
    dup = CliRunner().invoke(main, ["allocations", "create", "--name", "r", "--from", "unallocated", "--method",
                                    "even", "--db", ledger])  # fmt: skip
    assert dup.exit_code == 1 and "already exists" in dup.output
    cli("allocations", "delete", "r", "--db", ledger)
    assert cli_json("allocations", "list", "--db", ledger) == []


def test_a_sums_trailing_zeros_do_not_make_finer_shares() -> None:
    # A database sum may come back as 0.091505650000000000: shares stay at 1e-10.
    shares = split(Decimal("0.091505650000000000"), {"a": Decimal("2.24"), "b": Decimal("0.41"), "c": Decimal("1")})
    assert sum(shares.values()) == Decimal("0.09150565")
    assert all(share.normalize().as_tuple().exponent >= -10 for share in shares.values())
