"""Enforcement: tag policies, budgets by reservation, rate limits — for every endpoint and
provider alike, since the gateway calls it from its one choke point.

    admit()   before a request goes upstream: may refuse (400 / 402 / 429), else reserves
    settle()  after: actual cost into spent, the rest of the reservation released
    release() when the request never reached a provider
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from spendgate.attribution import Attribution
from spendgate.budgets.counters import Charge, CounterMissing, CounterState, CounterStore, RateLimiter, Refused
from spendgate.budgets.model import Budget, RateLimit, Scope
from spendgate.budgets.rules import Rules
from spendgate.budgets.windows import Window, window_for

log = logging.getLogger("spendgate.budgets")

ZERO = Decimal(0)
PURGE_INTERVAL_S = 10.0


class BudgetObserver(Protocol):
    """Told of spend and refusals (alerts); must not block."""

    def budget_spent(self, budget: Budget, window: Window, spent: Decimal) -> None: ...
    def budget_refused(self, budget: Budget, window: Window, spent: Decimal, reserved: Decimal) -> None: ...


class Refusal(Exception):
    """Base of the enforcement refusals; the gateway turns them into provider-shaped errors."""


@dataclass
class PolicyViolation(Refusal):
    environment: str
    missing: list[str]


@dataclass
class BudgetExceeded(Refusal):
    budget: Budget
    window: Window
    spent: Decimal
    reserved: Decimal
    requested: Decimal


@dataclass
class RateLimited(Refusal):
    scope: str
    retry_after: float


def counter_key(budget: Budget, window: Window) -> str:
    # The definition is part of the key: a budget deleted and made again with another
    # scope or calendar never inherits the old one's counter.
    return f"{budget.name}|{budget.scope}|{budget.period}|{budget.timezone}@{window.key}"


@dataclass(slots=True)
class Admission:
    request_id: str
    charged: list[tuple[Budget, Window, Charge]] = field(default_factory=list)
    limits: list[RateLimit] = field(default_factory=list)
    tokens: int = 0
    admitted_at: float = 0.0  # wall clock, for the rate-limit minute
    nearest: tuple[str, Decimal] | None = None  # (budget name, remaining USD) for the response headers


class Enforcer:
    def __init__(
        self,
        counters: CounterStore,
        limiter: RateLimiter,
        ledger_spend: Callable[[Scope, Window], Awaitable[Decimal]],
        *,
        observer: BudgetObserver | None = None,
        reservation_ttl: float = 3600.0,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.counters = counters
        self.limiter = limiter
        self.ledger_spend = ledger_spend
        self.observer = observer
        self.reservation_ttl = reservation_ttl
        self.wall_clock = wall_clock
        self.rules = Rules()
        self._known: dict[str, CounterState] = {}  # last seen state per counter, for headers
        self._purger: asyncio.Task[None] | None = None

    async def admit(
        self, request_id: str, owner: Attribution, worst_cost: Decimal, tokens: int, now: datetime
    ) -> Admission | None:
        rules = self.rules
        missing = rules.missing_dimensions(owner)
        if missing:
            raise PolicyViolation(owner.environment or "", missing)
        budgets = rules.budgets_for(owner)
        limits = rules.limits_for(owner)
        if not budgets and not limits:
            return None  # nothing applies: no counter is touched
        admission = Admission(request_id, limits=limits, tokens=tokens, admitted_at=self.wall_clock())
        if budgets:
            charged = [(b, window_for(b.period, b.timezone, now)) for b in budgets]
            charges = [(b, w, Charge(counter_key(b, w), b.limit_usd, b.blocking)) for b, w in charged]
            refused = await self._reserve(request_id, charges, worst_cost)
            if refused is not None:
                budget, window, _ = next(item for item in charges if item[2].counter == refused.counter)
                if self.observer is not None:
                    self.observer.budget_refused(budget, window, refused.spent, refused.reserved)
                raise BudgetExceeded(budget, window, refused.spent, refused.reserved, worst_cost)
            admission.charged = charges
        if limits:
            retry_after = await self.limiter.admit(
                [(str(limit.scope), limit.rpm, limit.tpm) for limit in limits], tokens, admission.admitted_at
            )
            if retry_after is not None:
                await self.counters.release(request_id)
                scope = next(str(limit.scope) for limit in limits)
                raise RateLimited(scope, retry_after)
        if admission.charged:
            admission.nearest = self._nearest(admission.charged, worst_cost)
        return admission

    async def _reserve(
        self, request_id: str, charges: Sequence[tuple[Budget, Window, Charge]], amount: Decimal
    ) -> Refused | None:
        """One round trip in the common case. A counter the store does not have (the first
        request of a window here, or Redis lost its data) is loaded from the ledger — once per
        budget window — and the reservation tried again; a new period has no spend and starts
        at zero."""
        for _ in range(3):
            try:
                return await self.counters.reserve(request_id, [c for _, _, c in charges], amount, self.reservation_ttl)
            except CounterMissing as missing:
                unloaded = set(missing.counters)
                for budget, window, charge in charges:
                    if charge.counter in unloaded:
                        spent = await self.ledger_spend(budget.scope, window)
                        await self.counters.load(charge.counter, spent)
                        self._known[charge.counter] = CounterState(charge.counter, spent, ZERO)
        raise RuntimeError("budget counters kept disappearing while being loaded")

    def _nearest(self, charged: Sequence[tuple[Budget, Window, Charge]], amount: Decimal) -> tuple[str, Decimal]:
        """The budget with the least left, from the counters as this gateway last saw them
        (at its latest settle): an informative header, not worth a round trip per request."""
        remaining = []
        for budget, _, charge in charged:
            known = self._known.get(charge.counter)
            spent, reserved = (known.spent, known.reserved) if known else (ZERO, ZERO)
            remaining.append((budget.limit_usd - spent - reserved - amount, not budget.blocking, budget.name))
        value, _, name = min(remaining)
        return name, value

    async def settle(self, admission: Admission, cost: Decimal | None, tokens: int) -> None:
        if admission.charged:
            states = await self.counters.settle(admission.request_id, cost or ZERO)
            for state in states:
                self._known[state.counter] = state
            if self.observer is not None:
                by_counter = {state.counter: state for state in states}
                for budget, window, charge in admission.charged:
                    state = by_counter.get(charge.counter)
                    if state is not None:
                        self.observer.budget_spent(budget, window, state.spent)
        if admission.limits and tokens != admission.tokens:
            await self.limiter.add_tokens(
                [str(limit.scope) for limit in admission.limits],
                tokens - admission.tokens,
                admission.admitted_at,
            )

    async def release(self, admission: Admission) -> None:
        if admission.charged:
            await self.counters.release(admission.request_id)

    async def _purge_forever(self) -> None:
        while True:
            await asyncio.sleep(PURGE_INTERVAL_S)
            try:
                expired = await self.counters.purge_expired()
                if expired:
                    log.warning("released %d expired budget reservation(s) of requests that never settled", expired)
            except Exception:
                log.exception("could not purge expired reservations")

    def start(self) -> None:
        self._purger = asyncio.get_running_loop().create_task(self._purge_forever(), name="spendgate-purge")

    async def aclose(self) -> None:
        if self._purger is not None:
            self._purger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._purger
        await self.counters.close()
        await self.limiter.close()
