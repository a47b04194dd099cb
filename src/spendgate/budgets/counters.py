"""Budget counters: spent and reserved dollars per budget window, and the reservations
that hold them, behind one small interface with an in-process and a Redis implementation.

Enforcement by reservation: before a request goes upstream its worst-case cost is reserved
against every budget that applies, in ONE atomic step that also checks the limits (no
check-then-spend race); afterwards the reservation is settled (actual cost moves to spent,
the rest is released) or released outright. Every reservation also has a deadline, so one
whose process died cannot hold money forever.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Charge:
    """One budget window a request is charged against."""

    counter: str  # "<budget name>@<window key>"
    limit: Decimal
    blocking: bool


@dataclass(frozen=True, slots=True)
class CounterState:
    counter: str
    spent: Decimal
    reserved: Decimal


@dataclass(frozen=True, slots=True)
class Refused:
    """The blocking budget window that would be passed."""

    counter: str
    limit: Decimal
    spent: Decimal
    reserved: Decimal


class CounterMissing(Exception):
    """A counter was never loaded (first use of its window here, or Redis lost it): its spend
    so far must come from the ledger before anything is reserved against it."""

    def __init__(self, counters: Sequence[str]) -> None:
        super().__init__(", ".join(counters))
        self.counters = list(counters)


def would_pass(limit: Decimal, spent: Decimal, reserved: Decimal, amount: Decimal) -> bool:
    """A blocking budget refuses once spent plus in-flight reservations would pass the limit,
    and always once it is spent (so a request of unknown price cannot slip through)."""
    return spent >= limit or spent + reserved + amount > limit


class CounterStore(Protocol):
    async def missing(self, counters: Sequence[str]) -> list[str]:
        """Counters that have never been loaded (their window's spend must come from the ledger)."""
        ...

    async def load(self, counter: str, spent: Decimal) -> None:
        """Set a counter's spent from the ledger, unless another process already did."""
        ...

    async def reserve(self, request_id: str, charges: Sequence[Charge], amount: Decimal, ttl: float) -> Refused | None:
        """All or nothing: refuse (changing nothing) if a blocking charge would pass its
        limit, else add ``amount`` to every charge's reserved, for at most ``ttl`` seconds.
        Raises ``CounterMissing`` (changing nothing) when a charge's counter was never loaded."""
        ...

    async def settle(self, request_id: str, cost: Decimal) -> list[CounterState]:
        """End a reservation: release it and add the actual ``cost`` to its counters' spent.
        A second settle (or a settle after release or expiry) changes nothing."""
        ...

    async def release(self, request_id: str) -> None:
        """End a reservation without spend (the request never reached a provider)."""
        ...

    async def states(self, counters: Sequence[str]) -> dict[str, CounterState]: ...

    async def purge_expired(self) -> int:
        """Drop reservations past their deadline; returns how many."""
        ...

    # --- the re-sync protocol (budgets/resync.py explains it) ---------------------------------
    async def ship_begin(self, token: str, lease: float) -> float:
        """A ledger writer is about to write a batch: 0 once its lease (``lease`` seconds) is
        taken, else the seconds a re-sync still holds its lock (wait, then ask again)."""
        ...

    async def ship_end(self, token: str, shipped: Sequence[tuple[str, Decimal | None]]) -> None:
        """The batch is written (stored, or set aside): each ``(request id, cost)`` is the
        ledger's now, not the writer's; the lease ends."""
        ...

    async def ships_in_progress(self) -> int:
        """Batches being written now (leases past their deadline are dropped)."""
        ...

    async def resync_lock(self, token: str, ttl: float) -> bool:
        """Take the re-sync lock for ``ttl`` seconds (False: another re-sync holds it)."""
        ...

    async def resync_unlock(self, token: str) -> None: ...

    async def resync_apply(self, token: str, spends: dict[str, Decimal]) -> dict[str, tuple[Decimal, Decimal]] | None:
        """Under the lock: each loaded counter's spent set to its ``spends`` (the ledger's) plus
        the settled spend not shipped yet, minus the shipped spend not settled yet; the lock
        ends. ``{counter: (spent before, spent after)}``, or None if the lock was lost."""
        ...

    async def close(self) -> None: ...


@dataclass(slots=True)
class _Reservation:
    counters: tuple[str, ...]
    amount: Decimal
    deadline: float
    shipped: Decimal | None = None  # its event's cost, once the ledger has it (before settlement)


class InProcessCounters:
    """Counters for a single gateway process. Every method runs to completion without an
    ``await`` in between, so on one event loop each call is atomic."""

    def __init__(self, clock=time.monotonic) -> None:
        self._spent: dict[str, Decimal] = {}
        self._reserved: dict[str, Decimal] = {}
        self._reservations: dict[str, _Reservation] = {}
        self._clock = clock
        self.expired = 0
        # The re-sync's bookkeeping, as redis_scripts.py describes it for Redis.
        self._unshipped: dict[str, Decimal] = {}  # u: settled here, not yet in the ledger
        self._preshipped: dict[str, Decimal] = {}  # p: in the ledger, not yet settled here
        self._settlements: dict[str, tuple[Decimal, tuple[str, ...]]] = {}
        self._ships: dict[str, float] = {}  # writer token -> lease deadline
        self._resync: tuple[str, float] | None = None  # (token, deadline) of the lock

    async def missing(self, counters: Sequence[str]) -> list[str]:
        return [c for c in counters if c not in self._spent]

    async def load(self, counter: str, spent: Decimal) -> None:
        self._spent.setdefault(counter, spent)

    async def reserve(self, request_id: str, charges: Sequence[Charge], amount: Decimal, ttl: float) -> Refused | None:
        self._purge(self._clock())
        if request_id in self._reservations:
            return None  # a retried reserve of a live reservation reserves nothing twice
        unloaded = [charge.counter for charge in charges if charge.counter not in self._spent]
        if unloaded:
            raise CounterMissing(unloaded)
        for charge in charges:
            spent = self._spent.get(charge.counter, ZERO)
            reserved = self._reserved.get(charge.counter, ZERO)
            if charge.blocking and would_pass(charge.limit, spent, reserved, amount):
                return Refused(charge.counter, charge.limit, spent, reserved)
        counters = tuple(charge.counter for charge in charges)
        for counter in counters:
            self._reserved[counter] = self._reserved.get(counter, ZERO) + amount
        self._reservations[request_id] = _Reservation(counters, amount, self._clock() + ttl)
        return None

    def _end(self, request_id: str) -> _Reservation | None:
        reservation = self._reservations.pop(request_id, None)
        if reservation is not None:
            for counter in reservation.counters:
                self._reserved[counter] = self._reserved.get(counter, ZERO) - reservation.amount
                if reservation.shipped and counter in self._spent:
                    self._preshipped[counter] = self._preshipped.get(counter, ZERO) - reservation.shipped
        return reservation

    async def settle(self, request_id: str, cost: Decimal) -> list[CounterState]:
        reservation = self._end(request_id)
        if reservation is None:
            return []
        states = []
        for counter in reservation.counters:
            if counter not in self._spent:
                continue  # forgotten meanwhile: reloaded from the ledger, which has this spend by then
            spent = self._spent[counter] = self._spent[counter] + cost
            states.append(CounterState(counter, spent, self._reserved.get(counter, ZERO)))
            if cost and reservation.shipped is None:
                self._unshipped[counter] = self._unshipped.get(counter, ZERO) + cost
        if cost and reservation.shipped is None:
            self._settlements[request_id] = (cost, reservation.counters)
        return states

    def forget_spent(self) -> None:
        """Drop every counter's spent (reservations stay): each is loaded from the ledger again
        at its next use. For spend another process wrote to the ledger (``spendgate ingest``,
        ``costs add``) that this process's counters cannot otherwise know."""
        self._spent.clear()

    async def release(self, request_id: str) -> None:
        self._end(request_id)

    async def states(self, counters: Sequence[str]) -> dict[str, CounterState]:
        return {c: CounterState(c, self._spent.get(c, ZERO), self._reserved.get(c, ZERO)) for c in counters}

    def _purge(self, now: float) -> int:
        expired = [rid for rid, r in self._reservations.items() if r.deadline <= now]
        for request_id in expired:
            self._end(request_id)
        self.expired += len(expired)
        return len(expired)

    async def purge_expired(self) -> int:
        return self._purge(self._clock())

    async def ship_begin(self, token: str, lease: float) -> float:
        now = self._clock()
        if self._resync is not None and self._resync[1] > now:
            return self._resync[1] - now
        self._ships[token] = now + lease
        return 0.0

    async def ship_end(self, token: str, shipped: Sequence[tuple[str, Decimal | None]]) -> None:
        for request_id, cost in shipped:
            settled = self._settlements.pop(request_id, None)
            if settled is not None:
                amount, counters = settled
                for counter in counters:
                    if counter in self._spent:
                        self._unshipped[counter] = self._unshipped.get(counter, ZERO) - amount
                continue
            reservation = self._reservations.get(request_id)
            if reservation is not None and reservation.shipped is None:
                reservation.shipped = cost or ZERO
                for counter in reservation.counters:
                    if counter in self._spent:
                        self._preshipped[counter] = self._preshipped.get(counter, ZERO) + reservation.shipped
        self._ships.pop(token, None)

    async def ships_in_progress(self) -> int:
        now = self._clock()
        for token in [t for t, deadline in self._ships.items() if deadline <= now]:
            del self._ships[token]
        return len(self._ships)

    async def resync_lock(self, token: str, ttl: float) -> bool:
        now = self._clock()
        if self._resync is not None and self._resync[1] > now:
            return False
        self._resync = (token, now + ttl)
        return True

    def _holds(self, token: str) -> bool:
        return self._resync is not None and self._resync[0] == token and self._resync[1] > self._clock()

    async def resync_unlock(self, token: str) -> None:
        if self._resync is not None and self._resync[0] == token:
            self._resync = None

    async def resync_apply(self, token: str, spends: dict[str, Decimal]) -> dict[str, tuple[Decimal, Decimal]] | None:
        if not self._holds(token):
            return None
        changed = {}
        for counter, ledger in spends.items():
            if counter not in self._spent:
                continue  # never loaded here: its first use loads it from the ledger
            before = self._spent[counter]
            after = ledger + self._unshipped.get(counter, ZERO) - self._preshipped.get(counter, ZERO)
            self._spent[counter] = max(after, ZERO)
            changed[counter] = (before, self._spent[counter])
        self._resync = None
        return changed

    async def close(self) -> None:
        return None


class RateLimiter(Protocol):
    async def admit(
        self, limits: Sequence[tuple[str, int | None, int | None]], tokens: int, now: float
    ) -> float | None:
        """Count one request of ``tokens`` (estimated) against each ``(scope, rpm, tpm)``
        for the minute of ``now``; None when admitted, else seconds until it may retry.
        A refused request counts nothing."""
        ...

    async def add_tokens(self, scopes: Sequence[str], tokens: int, now: float) -> None:
        """Correct the minute's token count once the actual usage is known (may be negative).
        A minute no longer kept (long past; no admission reads it) is not corrected."""
        ...

    async def close(self) -> None: ...


def minute_of(now: float) -> int:
    return int(now // 60)


class InProcessRateLimiter:
    """Fixed one-minute windows per scope, for a single gateway process."""

    def __init__(self) -> None:
        self._requests: dict[tuple[str, int], int] = {}
        self._tokens: dict[tuple[str, int], int] = {}

    async def admit(
        self, limits: Sequence[tuple[str, int | None, int | None]], tokens: int, now: float
    ) -> float | None:
        refused = self.try_admit(limits, tokens, now)
        return None if refused is None else refused[1]

    def try_admit(
        self, limits: Sequence[tuple[str, int | None, int | None]], tokens: int, now: float
    ) -> tuple[int, float, str] | None:
        """``admit``, answering which limit refused: (its index, seconds until a retry, and
        ``"rpm"`` or ``"tpm"``: which of its counts was used up)."""
        minute = minute_of(now)
        self._forget_before(minute)
        for index, (scope, rpm, tpm) in enumerate(limits):
            key = (scope, minute)
            if rpm is not None and self._requests.get(key, 0) + 1 > rpm:
                return index, 60 - now % 60, "rpm"
            if tpm is not None and self._tokens.get(key, 0) + tokens > tpm:
                return index, 60 - now % 60, "tpm"
        for scope, _, _ in limits:
            key = (scope, minute)
            self._requests[key] = self._requests.get(key, 0) + 1
            self._tokens[key] = self._tokens.get(key, 0) + tokens
        return None

    async def add_tokens(self, scopes: Sequence[str], tokens: int, now: float) -> None:
        minute = minute_of(now)
        for scope in scopes:
            key = (scope, minute)
            if key in self._tokens:
                self._tokens[key] += tokens

    def _forget_before(self, minute: int) -> None:
        if len(self._requests) > 1024:
            for store in (self._requests, self._tokens):
                for key in [k for k in store if k[1] < minute]:
                    del store[key]

    async def close(self) -> None:
        return None
