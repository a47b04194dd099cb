"""The gate: budget reservations and rate limits changed together, so that admitting a request
is one atomic step (one Redis round trip) and settling it another, whatever applies to it.

``admit`` reserves the worst-case cost on every budget window and counts the request on every
rate limit, or refuses and changes nothing: a request refused by a rate limit holds no
reservation, one refused by a budget counts against no limit. ``settle`` ends the reservation
(actual cost spent, the rest released) and corrects the rate limits' token counts from the
estimate to the actual usage. The counters and the rate limiter stay reachable on their own
(``counters``, ``limiter``) for what is not per request: loading a counter from the ledger,
reading states, purging expired reservations, a rate limit alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from spendgate.budgets.counters import (
    Charge,
    CounterState,
    CounterStore,
    InProcessCounters,
    InProcessRateLimiter,
    RateLimiter,
    Refused,
)

RateCharge = tuple[str, int | None, int | None]  # (scope, rpm, tpm), as RateLimiter takes them


@dataclass(frozen=True, slots=True)
class RateRefused:
    """The rate limit at ``index`` (of those the admission was given) refused the request, its
    requests (``kind`` "rpm") or its tokens ("tpm") of the minute used up; it may retry in
    ``retry_after`` seconds."""

    index: int
    retry_after: float
    kind: str = "rpm"


class Gate(Protocol):
    counters: CounterStore
    limiter: RateLimiter

    async def admit(
        self,
        request_id: str,
        charges: Sequence[Charge],
        amount: Decimal,
        ttl: float,
        limits: Sequence[RateCharge],
        tokens: int,
        now: float,
    ) -> Refused | RateRefused | None:
        """All or nothing: a budget refusal first (``Refused``), then a rate-limit one
        (``RateRefused``), else ``amount`` reserved on every charge as ``CounterStore.reserve``
        does (nothing when there are no charges) and ``tokens`` counted as ``RateLimiter.admit``
        does. Raises ``CounterMissing`` (changing nothing) when a charge's counter was never loaded."""
        ...

    async def settle(
        self, request_id: str, cost: Decimal, scopes: Sequence[str], tokens: int, now: float
    ) -> list[CounterState]:
        """``CounterStore.settle``, and ``tokens`` (actual minus estimated; 0 for none) added to
        the rate limits of ``scopes`` for the minute of ``now`` (the admission's)."""
        ...

    async def close(self) -> None: ...


class InProcessGate:
    """The in-process counters and rate limiter, together. Neither awaits anything, so each
    method runs to completion in one step of the event loop: atomic, as a Redis script is."""

    def __init__(self, counters: InProcessCounters | None = None, limiter: InProcessRateLimiter | None = None) -> None:
        self.counters = counters if counters is not None else InProcessCounters()
        self.limiter = limiter if limiter is not None else InProcessRateLimiter()

    async def admit(
        self,
        request_id: str,
        charges: Sequence[Charge],
        amount: Decimal,
        ttl: float,
        limits: Sequence[RateCharge],
        tokens: int,
        now: float,
    ) -> Refused | RateRefused | None:
        if charges:
            refused = await self.counters.reserve(request_id, charges, amount, ttl)
            if refused is not None:
                return refused
        if limits:
            refused = self.limiter.try_admit(limits, tokens, now)
            if refused is not None:
                if charges:  # in the same step: nobody saw the reservation
                    await self.counters.release(request_id)
                return RateRefused(*refused)
        return None

    async def settle(
        self, request_id: str, cost: Decimal, scopes: Sequence[str], tokens: int, now: float
    ) -> list[CounterState]:
        states = await self.counters.settle(request_id, cost)
        if tokens and scopes:
            await self.limiter.add_tokens(scopes, tokens, now)
        return states

    async def close(self) -> None:
        await self.counters.close()
        await self.limiter.close()
