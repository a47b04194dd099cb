"""Enforcement: tag policies, budgets by reservation, rate limits — for every endpoint and
provider alike, since the gateway calls it from its one choke point.

    admit()   before a request goes upstream: may refuse (400 / 402 / 429), else reserves
    settle()  after: actual cost into spent, the rest of the reservation released
    release() when the request never reached a provider

Each is one call to the gate (one Redis round trip): budgets and rate limits together.
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
from spendgate.budgets.counters import Charge, CounterMissing, CounterState, CounterStore, Refused
from spendgate.budgets.gate import Gate, RateCharge, RateRefused
from spendgate.budgets.model import Budget, RateLimit, Scope
from spendgate.budgets.rules import Rules
from spendgate.budgets.windows import Window, WindowCache

log = logging.getLogger("spendgate.budgets")

ZERO = Decimal(0)
PURGE_INTERVAL_S = 10.0


class BudgetObserver(Protocol):
    """Told of spend and refusals (alerts), with the instant of the request that caused them;
    must not block."""

    def budget_spent(self, budget: Budget, window: Window, spent: Decimal, at: datetime) -> None: ...
    def budget_refused(
        self, budget: Budget, window: Window, spent: Decimal, reserved: Decimal, *, exhausted: bool, at: datetime
    ) -> None: ...


class Refusal(Exception):
    """Base of the enforcement refusals; the gateway turns them into provider-shaped errors."""


@dataclass
class PolicyViolation(Refusal):
    environment: str
    missing: list[str]


@dataclass
class BudgetExceeded(Refusal):
    """A blocking budget window cannot take this request's worst case (``requested``).

    ``exhausted`` tells the two reasons apart: the budget is spent — its spend reached the
    limit, or what remains is less than the cheapest request it has been charged in this window
    (before any, this request's input alone), so no request like those can pass — or it is not,
    and only this request's worst case (with the requests in flight) is more than what remains:
    a smaller ``max_tokens`` may pass."""

    budget: Budget
    window: Window
    spent: Decimal
    reserved: Decimal
    requested: Decimal
    exhausted: bool = False
    # The window's effective limit: the budget's plus any extra spend approved for the window.
    limit: Decimal | None = None

    @property
    def effective_limit(self) -> Decimal:
        return self.budget.limit_usd if self.limit is None else self.limit

    @property
    def approved_extra(self) -> Decimal:
        return self.effective_limit - self.budget.limit_usd

    @property
    def remaining(self) -> Decimal:
        return max(self.effective_limit - self.spent - self.reserved, ZERO)


@dataclass
class RateLimited(Refusal):
    scope: str
    retry_after: float
    kind: str = "rpm"  # which count of the minute was used up: "rpm" (requests) or "tpm" (tokens)
    limit: int | None = None


@dataclass
class ScopeSuspended(Refusal):
    """The request's scope is suspended (an anomaly rule, or by hand) until resumed."""

    scope: str
    anomaly_id: str | None


@dataclass
class TokensNeverFit(Refusal):
    """The request's own estimated tokens are more than a tpm limit allows in a whole minute:
    it could never pass, so it is refused outright (a 429 would be retried forever)."""

    scope: str
    tpm: int
    tokens: int  # input + output, estimated
    output_tokens: int  # of which the output bound (max_tokens × answers)


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
    started: datetime | None = None  # the request's instant (the gateway's clock)
    nearest: tuple[str, Decimal] | None = None  # (budget name, remaining USD) for the response headers


class Enforcer:
    def __init__(
        self,
        gate: Gate,
        ledger_spend: Callable[[Scope, Window], Awaitable[Decimal]],
        *,
        observer: BudgetObserver | None = None,
        reservation_ttl: float = 3600.0,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.gate = gate
        self.ledger_spend = ledger_spend
        self.observer = observer
        self.reservation_ttl = reservation_ttl
        self.wall_clock = wall_clock
        self.rules = Rules()
        self._known: dict[str, CounterState] = {}  # last seen state per counter, for headers
        # The cheapest request (cost above zero) each counter was charged here: once what is
        # left of a budget is less, no request like those can pass, and the budget is exhausted.
        self._cheapest: dict[str, Decimal] = {}
        self._windows = WindowCache()
        self._purger: asyncio.Task[None] | None = None

    async def admit(
        self,
        request_id: str,
        owner: Attribution,
        worst_cost: Decimal,
        tokens: int,
        now: datetime,
        *,
        least_cost: Callable[[], Decimal] | None = None,
        output_tokens: int = 0,
    ) -> Admission | None:
        """Reserve ``worst_cost`` and count ``tokens`` (of which ``output_tokens`` are the output
        bound) against everything that applies, or refuse. ``least_cost`` gives what the request
        costs at the very least (its input alone; asked only on a budget refusal): a budget that
        cannot take even that, before it has been charged any request this window, is exhausted."""
        rules = self.rules
        if rules.suspensions or rules.trace_suspensions:
            suspended = rules.suspension_for(owner, now)
            if suspended is not None:
                raise ScopeSuspended(str(suspended.scope), suspended.anomaly_id)
        missing = rules.missing_dimensions(owner)
        if missing:
            raise PolicyViolation(owner.environment or "", missing)
        budgets = rules.budgets_for(owner)
        limits = rules.limits_for(owner)
        if not budgets and not limits:
            return None  # nothing applies: no counter is touched
        for limit in limits:
            if limit.tpm is not None and tokens > limit.tpm:
                raise TokensNeverFit(str(limit.scope), limit.tpm, tokens, output_tokens)
        admission = Admission(request_id, limits=limits, tokens=tokens, admitted_at=self.wall_clock(), started=now)
        charged = [self._charge(budget, now) for budget in budgets]
        rates = [(str(limit.scope), limit.rpm, limit.tpm) for limit in limits]
        refused = await self._admit(request_id, charged, worst_cost, rates, tokens, admission.admitted_at)
        if isinstance(refused, RateRefused):
            scope, rpm, tpm = rates[refused.index]
            raise RateLimited(scope, refused.retry_after, refused.kind, rpm if refused.kind == "rpm" else tpm)
        if refused is not None:
            budget, window, charge = next(item for item in charged if item[2].counter == refused.counter)
            floor = self._cheapest.get(charge.counter)
            if floor is None:
                floor = least_cost() if least_cost is not None else ZERO
            exhausted = refused.spent >= charge.limit or charge.limit - refused.spent < floor
            if self.observer is not None:
                self.observer.budget_refused(
                    budget, window, refused.spent, refused.reserved, exhausted=exhausted, at=now
                )
            raise BudgetExceeded(
                budget, window, refused.spent, refused.reserved, worst_cost, exhausted, limit=charge.limit
            )
        if charged:
            admission.charged = charged
            admission.nearest = self._nearest(charged, worst_cost)
        return admission

    def recorded_charges(self, owner: Attribution, at: datetime, now: datetime) -> list[tuple[Budget, Window, Charge]]:
        """What spend that happened elsewhere (ingested, a manual cost) is charged to: the budgets
        of ``owner`` whose current window holds ``at``, each charge non-blocking, since spend
        already made cannot be refused after the fact. A backfill into a past window changes no
        live counter (a past window's spend is read from the ledger)."""
        charged = []
        for budget in self.rules.budgets_for(owner):
            window = self._windows.get(budget.period, budget.timezone, now)
            if window.contains(at):
                charged.append((budget, window, Charge(counter_key(budget, window), budget.limit_usd, blocking=False)))
        return charged

    async def open_recorded(
        self, request_id: str, charged: Sequence[tuple[Budget, Window, Charge]], at: datetime
    ) -> Admission:
        """A reservation of nothing on ``charged`` (``recorded_charges``), never refused, loading
        their counters from the ledger first if need be (so before the spend is in the ledger);
        ``settle`` then adds what was recorded: a budget it exhausts refuses the next proxied
        request, and its alerts fire."""
        admitted_at = self.wall_clock()
        refused = await self._admit(request_id, charged, ZERO, (), 0, admitted_at)
        assert refused is None, "a non-blocking charge is never refused"
        return Admission(request_id, charged=list(charged), admitted_at=admitted_at, started=at)

    @property
    def counters(self) -> CounterStore:
        return self.gate.counters

    def _charge(self, budget: Budget, now: datetime) -> tuple[Budget, Window, Charge]:
        window = self._windows.get(budget.period, budget.timezone, now)
        # An approver may have granted this window extra spend (an on_exhausted=approve budget).
        limit = budget.limit_usd + self.rules.approved_extra(budget, window.key)
        return budget, window, Charge(counter_key(budget, window), limit, budget.blocking)

    async def _admit(
        self,
        request_id: str,
        charged: Sequence[tuple[Budget, Window, Charge]],
        amount: Decimal,
        rates: Sequence[RateCharge],
        tokens: int,
        admitted_at: float,
    ) -> Refused | RateRefused | None:
        """One round trip in the common case. A counter the store does not have (the first
        request of a window here, or Redis lost its data) is loaded from the ledger — once per
        budget window — and the admission tried again; a new period has no spend and starts
        at zero."""
        charges = [charge for _, _, charge in charged]
        for _ in range(3):
            try:
                return await self.gate.admit(
                    request_id, charges, amount, self.reservation_ttl, rates, tokens, admitted_at
                )
            except CounterMissing as missing:
                unloaded = set(missing.counters)
                for budget, window, charge in charged:
                    if charge.counter in unloaded:
                        spent = await self.ledger_spend(budget.scope, window)
                        await self.gate.counters.load(charge.counter, spent)
                        self._known[charge.counter] = CounterState(charge.counter, spent, ZERO)
            except BaseException:
                # A timeout or a cancellation may come after the store reserved (a Redis script
                # that ran, its reply lost): end it now rather than when its deadline passes.
                if charges:
                    with contextlib.suppress(Exception):
                        await self.gate.counters.release(request_id)
                raise
        raise RuntimeError("budget counters kept disappearing while being loaded")

    def _nearest(self, charged: Sequence[tuple[Budget, Window, Charge]], amount: Decimal) -> tuple[str, Decimal]:
        """The budget with the least left, from the counters as this gateway last saw them
        (at its latest settle): an informative header, not worth a round trip per request."""
        remaining = []
        for budget, _, charge in charged:
            known = self._known.get(charge.counter)
            spent, reserved = (known.spent, known.reserved) if known else (ZERO, ZERO)
            remaining.append((charge.limit - spent - reserved - amount, not budget.blocking, budget.name))
        value, _, name = min(remaining)
        return name, value

    async def settle(
        self, admission: Admission, cost: Decimal | None, tokens: int, *, at: datetime | None = None
    ) -> None:
        """End the admission at ``cost`` (None: unpriced) and ``tokens`` actually used; ``at`` is
        the instant the spend belongs to (the event's), the admission's by default."""
        # The rate limits counted the estimate at admission: correct them to the actual usage.
        correction = tokens - admission.tokens if admission.limits else 0
        scopes = [str(limit.scope) for limit in admission.limits] if correction else []
        if admission.charged:
            states = await self.gate.settle(
                admission.request_id, cost or ZERO, scopes, correction, admission.admitted_at
            )
            known, cheapest = self._known, self._cheapest
            # One entry per budget window: past windows would pile up for the life of the
            # process. Only headers and the exhaustion floor read them, so forgetting everything
            # now and then is harmless.
            if len(known) > 4 * len(self.rules.budgets) + 64:
                known.clear()
                cheapest.clear()
            for state in states:
                known[state.counter] = state
                if cost and cost < cheapest.get(state.counter, cost + 1):
                    cheapest[state.counter] = cost
            if self.observer is not None:
                when = at or admission.started
                by_counter = {state.counter: state for state in states}
                for budget, window, charge in admission.charged:
                    state = by_counter.get(charge.counter)
                    if state is not None:
                        self.observer.budget_spent(budget, window, state.spent, when)
        elif correction:
            await self.gate.limiter.add_tokens(scopes, correction, admission.admitted_at)

    async def release(self, admission: Admission) -> None:
        if admission.charged:
            await self.gate.counters.release(admission.request_id)

    async def _purge_forever(self) -> None:
        while True:
            await asyncio.sleep(PURGE_INTERVAL_S)
            try:
                expired = await self.gate.counters.purge_expired()
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
        await self.gate.close()
