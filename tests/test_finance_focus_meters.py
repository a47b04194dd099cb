"""The FOCUS export's token kinds (finance/focus_meters.py) against the gateway's own pricing:
a group's kinds at a price list cost exactly what ``pricing.rates.cost`` charges for the same
usage (inconsistent usage included: a part larger than its whole), and a cost shared among
the kinds sums back to it to the last digit, whatever the amounts."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from spendgate.finance.focus_meters import (
    REQUEST_METER,
    TOKEN_METERS,
    meter_cost,
    meter_quantities,
    split_by_list_weight,
    unit_price,
)
from spendgate.pricing.rates import Rates, cost
from spendgate.usage.model import Usage

tokens = st.integers(min_value=0, max_value=10**12)
rates_values = st.decimals(min_value=0, max_value=1000, places=6, allow_nan=False, allow_infinity=False)
FIELDS = ("input_tokens", "cached_input_tokens", "cache_write_tokens", "cache_write_1h_tokens", "output_tokens",
          "reasoning_tokens")  # fmt: skip


@st.composite
def price_lists(draw: st.DrawFn) -> Rates:
    names = ("input_mtok", "cached_input_mtok", "cache_write_mtok", "cache_write_1h_mtok", "output_mtok",
             "reasoning_mtok", "request_kusd")  # fmt: skip
    return Rates(**{name: draw(rates_values) for name in names})


@settings(max_examples=400, deadline=None)
@given(counts=st.tuples(*(tokens for _ in FIELDS)), rates=price_lists())
def test_the_kinds_at_list_price_cost_what_pricing_charges(counts: tuple[int, ...], rates: Rates) -> None:
    totals = dict(zip(FIELDS, counts, strict=True))
    quantities = meter_quantities(totals, 1, rates)
    charged = cost(Usage(**totals), rates)
    if not quantities:  # no tokens: the group stays one row, whatever a request costs
        assert charged == rates.request_kusd / 1000
        return
    assert sum((meter_cost(m, q, rates) for m, q in quantities.items()), Decimal(0)) == charged
    assert all(q > 0 for q in quantities.values())
    for meter, quantity in quantities.items():
        assert unit_price(meter, rates) * quantity == meter_cost(meter, quantity, rates)


@settings(max_examples=400, deadline=None)
@given(
    counts=st.tuples(*(tokens for _ in FIELDS)).filter(any),
    rates=st.none() | price_lists(),
    amount=st.decimals(min_value=0, max_value=10**9, places=12, allow_nan=False, allow_infinity=False),
)
def test_a_groups_cost_is_shared_among_its_kinds_exactly(
    counts: tuple[int, ...], rates: Rates | None, amount: Decimal
) -> None:
    totals = dict(zip(FIELDS, counts, strict=True))
    quantities = meter_quantities(totals, 3, rates)
    if not quantities:
        return
    shares = split_by_list_weight(amount, quantities, rates)
    assert set(shares) == set(quantities)
    assert sum(shares.values(), Decimal(0)) == amount
    assert all(share >= 0 for share in shares.values())


def test_kinds_follow_pricing_conventions() -> None:
    """Cache reads and writes are parts of input, reasoning a part of output, 1-hour writes a
    part of the writes; a per-request list price adds a Requests meter."""
    totals = {"input_tokens": 1000, "cached_input_tokens": 300, "cache_write_tokens": 500,
              "cache_write_1h_tokens": 200, "output_tokens": 90, "reasoning_tokens": 30}  # fmt: skip
    per_request = Rates(*(Decimal(1),) * 6, request_kusd=Decimal(5))
    found = {m.kind: q for m, q in meter_quantities(totals, 4, per_request).items()}
    assert found == {"input": 200, "cached_input": 300, "cache_write_5m": 300, "cache_write_1h": 200,
                     "output": 60, "reasoning": 30, "requests": 4}  # fmt: skip
    assert unit_price(REQUEST_METER, per_request) == Decimal("0.005")
    assert unit_price(TOKEN_METERS[0], per_request) == Decimal("0.000001")
    # A share follows the list weight: output at 4x the input rate takes 4x per token.
    rates = Rates(Decimal(1), Decimal(0), Decimal(0), Decimal(0), Decimal(4), Decimal(4))
    shares = split_by_list_weight(Decimal("0.5"), meter_quantities({**totals, "cached_input_tokens": 0,
                                  "cache_write_tokens": 0, "cache_write_1h_tokens": 0, "reasoning_tokens": 0,
                                  "input_tokens": 100, "output_tokens": 100}, 1, rates), rates)  # fmt: skip
    assert {m.kind: s for m, s in shares.items()} == {"input": Decimal("0.1"), "output": Decimal("0.4")}
