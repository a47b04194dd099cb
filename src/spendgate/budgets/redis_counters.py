"""Budget counters and rate limits in Redis, shared by several gateway replicas.

``RedisCounters`` implements ``CounterStore`` and ``RedisRateLimiter`` implements ``RateLimiter``
with the same behaviour as the in-process ones (the same contract tests run against both), so
that a budget or a rate limit holds across every replica that uses the same Redis and namespace.

``RedisGate`` puts both behind one client and implements ``Gate``: a request costs one round
trip to admit and one to settle, whatever budgets and rate limits apply to it.

Atomicity. Every change is one Lua script (EVALSHA, loaded on first use; the scripts and the key
layout are in redis_scripts.py): ``admit`` purges expired reservations, checks every blocking
charge and every rate limit, then reserves on all the charges and counts on all the limits, in
one step, so two replicas cannot both pass a nearly exhausted budget and a refused request
changes nothing; ``settle`` and ``release`` change the reservation record and the counters
together (and ``settle`` the rate limits' token counts). A script refuses before it writes
anything, and also checks for counter overflow before writing, since Redis does not roll a
script back if a command in it fails.

Exact money. Lua numbers are doubles, so amounts are stored as integers of pico-dollars
(1e-12 USD), as decimal strings in Redis, and changed only with HINCRBY (exact 64-bit integer
arithmetic in the server); Lua converts them to numbers only to compare, and the scripts answer
with strings that Python adds to exactly. Consequences:

* Decimal to pico rounds UP (ceiling): conservative for enforcement, and exact for any price
  with at most 6 decimals per million tokens (such a price times a token count is a whole
  number of pico-dollars). A limit rounds DOWN, also conservative. Pico to Decimal is exact.
* A counter holds at most 2^63 - 1 pico-dollars, about $9.2M per budget window. Spend is
  never refused for it: a settlement or a load past it leaves the counter full (saturated),
  which refuses every later request of a blocking budget as the ledger's spend would, and
  still ends the reservation; a settlement that raised would leave the reservation holding
  its budget until it expired. A reservation that would pass it raises ``redis.ResponseError``
  and changes nothing (the request is refused).
* The limit comparisons in Lua are exact below 2^53 pico-dollars (about $9,007); above, they
  are within 1e-16 relative (a few pico-dollars on a budget of thousands of dollars).
  The stored counters themselves stay exact at any size.

Reservations. A hash per reservation (its counters and amount) and a sorted set of deadlines.
Deadlines come from the Redis server's clock (``TIME`` inside the scripts), so replicas with
skewed clocks agree on when a reservation has expired; whoever reserves next purges the expired
ones, so a dead replica's reservations are released by the survivors. ``expired`` counts the
reservations this client's scripts purged. Request ids must be unique: reserving an id that
already holds a live reservation is a successful no-op, so a command retried after a lost reply
(redis-py retries on connection errors) cannot reserve twice.

Missing counters. ``admit`` (and ``missing``) report counters that were never loaded, so the
gateway loads them from the ledger (``load`` sets spent unless it is set). The counter of a
calendar window (``budget@2026-11``) gets a TTL of 40 days when it is loaded, at its window's
first use: a window's counter is never used again once its window has passed, so it need not
live forever, and it is never refreshed (one EXPIRE less per write). Counters of
``budget@total`` have no TTL. If Redis loses data, the affected counters are reported missing
again and rebuilt from the ledger (reservations lost with them simply end). Run Redis with
``maxmemory-policy noeviction``: an eviction policy would silently drop counters (the
``volatile-*`` ones prefer exactly the keys with a TTL).

Keys. Everything lives under ``{namespace}:{sg:{namespace}}:`` (literal braces: a Redis Cluster
hash tag), so all keys a script touches (including the expired reservations it purges, which it
cannot declare in advance) are in one cluster slot; distinct namespaces may use distinct slots.
The gateway's namespace is its ledger's (``ledger_namespace``: ``spendgate:<ledger id>``), so
ledgers sharing a Redis never share a counter.

Re-sync. Settlements, the ledger writers and the periodic re-sync also keep the bookkeeping that
lets the counters be set from the ledger without counting in-flight spend twice (the scripts'
``u``, ``p``, ``stl:``, ``ships`` and ``resync`` keys; budgets/resync.py explains why).

Rate limits use fixed one-minute windows of the caller's ``now`` (as ``InProcessRateLimiter``),
one hash per scope and minute that expires two minutes after the first request of its minute;
a token correction for a minute whose hash has expired is dropped (no admission reads it any more).

Deadlines of calls. Each call to Redis fails with ``TimeoutError`` after ``COMMAND_TIMEOUT``
(retries included) rather than hang the request; the client made by ``connect`` has no socket
timeout of its own, which redis-py would pay for in CPU on every command.

Upgrading from the layout of one string key per spent and reserved: the new keys have other
names, so the counters are simply loaded from the ledger again; do not run both versions
against the same Redis (each would see only its own reservations).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Sequence
from decimal import Context, Decimal
from typing import Any, Self, TypeVar

import orjson
from redis.asyncio import Redis

from spendgate.budgets import redis_scripts as scripts
from spendgate.budgets.counters import Charge, CounterMissing, CounterState, Refused, minute_of
from spendgate.budgets.gate import RateCharge, RateRefused

PICO_EXPONENT = 12
_PICO_PER_USD = 10**PICO_EXPONENT
INT64_MAX = 2**63 - 1
WINDOW_KEY_TTL = 40 * 86400  # seconds; longer than any calendar window (a month is at most 31 days)
RATE_KEY_TTL = 120  # seconds
COMMAND_TIMEOUT = 5.0  # seconds a call to Redis may take, retries included, before it fails
PURGE_BATCH = 1000  # expired reservations one script purges at most (reserve stays bounded)
TOTAL_SUFFIX = "@total"
_HUGE_DIGITS = 30  # pico-dollar amounts with more digits are all 'beyond range' alike
ZERO = Decimal(0)
T = TypeVar("T")
_EXACT = Context(prec=60)  # far more digits than a 64-bit integer: conversions never round


# -- exact conversions ---------------------------------------------------------------------------


def _scaled(amount: Decimal, ceiling: bool) -> int:
    """``amount`` in pico-dollars, rounded up (ceiling) or down (floor), by exact integer arithmetic."""
    if not isinstance(amount, Decimal):
        amount = Decimal(amount)
    if not amount.is_finite():
        raise ValueError(f"not a finite amount: {amount}")
    sign, digits, exponent = amount.as_tuple()
    assert isinstance(exponent, int)
    coefficient = int("".join(map(str, digits)))
    shift = exponent + PICO_EXPONENT
    if coefficient == 0:
        return 0
    if shift + len(digits) > _HUGE_DIGITS:  # far beyond any 64-bit count: no need to build it
        return -(10**_HUGE_DIGITS) if sign else 10**_HUGE_DIGITS
    if -shift > len(digits):  # a nonzero amount below one pico-dollar
        magnitude, inexact = 0, True
    elif shift >= 0:
        magnitude, inexact = coefficient * 10**shift, False
    else:
        magnitude, remainder = divmod(coefficient, 10**-shift)
        inexact = remainder != 0
    if sign:
        # Truncating a negative magnitude rounds up; rounding down needs one more.
        return -(magnitude + (1 if inexact and not ceiling else 0))
    return magnitude + (1 if inexact and ceiling else 0)


def to_pico(amount: Decimal) -> int:
    """Dollars to integer pico-dollars, rounded up (ceiling); must fit a Redis 64-bit integer."""
    pico = _scaled(amount, ceiling=True)
    if not -INT64_MAX <= pico <= INT64_MAX:
        raise ValueError(f"{amount} USD does not fit a 64-bit count of pico-dollars")
    return pico


def spend_to_pico(amount: Decimal) -> int:
    """Spend in pico-dollars, rounded up and saturated at what a counter holds: recording spend
    never fails on its size (the gateway bounds each event far below this anyway)."""
    return min(max(_scaled(amount, ceiling=True), 0), INT64_MAX)


def limit_to_pico(limit: Decimal) -> int:
    """A budget limit in pico-dollars, rounded down (only compared, so no range limit)."""
    return _scaled(limit, ceiling=False)


def from_pico(pico: int | str) -> Decimal:
    """Integer pico-dollars to exact dollars, without trailing zeros (and never as ``1E+1``)."""
    pico = int(pico)
    dollars, fraction = divmod(pico, _PICO_PER_USD)
    if not fraction:  # whole dollars: an integer Decimal (normalize would give 1E+1 for 10)
        return Decimal(dollars)
    # With a fraction, normalizing leaves a negative exponent: never the 1E+1 form.
    return Decimal(pico).scaleb(-PICO_EXPONENT, context=_EXACT).normalize(_EXACT)


# -- clients -------------------------------------------------------------------------------------


def ledger_namespace(configured: str | None, ledger_id: str) -> str:
    """The namespace of a ledger's counters: the one configured, else ``spendgate:<ledger id>``,
    so that two ledgers (two databases) sharing one Redis never count each other's spend."""
    return configured or f"spendgate:{ledger_id}"


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


async def _connected(url: str, build: Callable[[Redis], T]) -> T:
    """``build`` over a new client of the Redis at ``url`` (e.g. ``redis://host:6379/0``) once it
    has answered a PING; the client is closed if either fails."""
    # No socket timeout: redis-py then runs each send in a new task (asyncio.wait_for) and each
    # read under a timer, ~15 µs of CPU per command; the counters put one deadline on each call
    # instead (``within``). Connecting keeps redis-py's timeout.
    client = Redis.from_url(url, decode_responses=True, socket_timeout=None)
    try:
        async with asyncio.timeout(COMMAND_TIMEOUT):
            await client.ping()
        return build(client)
    except BaseException:
        await client.aclose()
        raise


async def within(call: Awaitable[T]) -> T:
    """``call`` under one deadline (redis-py's retries included). Cancelling a command midway is
    safe: redis-py then drops the connection, so no late reply is read as another's."""
    async with asyncio.timeout(COMMAND_TIMEOUT):
        return await call


class _RedisNamespace:
    """A Redis client and the key prefix of one namespace."""

    def __init__(self, client: Redis, *, namespace: str) -> None:
        if not namespace or any(ch in namespace for ch in "{}"):
            raise ValueError(f"namespace must be non-empty and without braces: {namespace!r}")
        self._redis = client
        self.namespace = namespace
        self.prefix = f"{namespace}:{{sg:{namespace}}}:"

    @classmethod
    async def connect(cls, url: str, *, namespace: str, **kwargs: Any) -> Self:
        """Connect to the Redis at ``url`` (e.g. ``redis://host:6379/0``) and check it answers."""
        return await _connected(url, lambda client: cls(client, namespace=namespace, **kwargs))

    def rate_key(self, scope: str, minute: int) -> str:
        return f"{self.prefix}rate:{scope}:{minute}"

    async def flush_namespace(self) -> int:
        """Delete every key of this namespace (counters, reservations and rate limits alike)."""
        deleted = 0
        batch: list[str] = []
        async for key in self._redis.scan_iter(match=_glob_escape(self.prefix) + "*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += await self._redis.unlink(*batch)
                batch.clear()
        if batch:
            deleted += await self._redis.unlink(*batch)
        return deleted

    async def close(self) -> None:
        await self._redis.aclose()


class RedisCounters(_RedisNamespace):
    """``CounterStore`` in Redis: budgets hold across every replica sharing the namespace. Its
    ``admit`` and ``settle`` also take the request's rate limits, for ``RedisGate``."""

    def __init__(self, client: Redis, *, namespace: str, window_ttl: int = WINDOW_KEY_TTL) -> None:
        super().__init__(client, namespace=namespace)
        self.window_ttl = window_ttl
        self.expired = 0
        self.due_key = self.prefix + "due"
        self._admit = client.register_script(scripts.ADMIT)
        self._settle = client.register_script(scripts.SETTLE)
        self._release = client.register_script(scripts.RELEASE)
        self._purge = client.register_script(scripts.PURGE)
        self._load = client.register_script(scripts.LOAD)
        self._ship_begin = client.register_script(scripts.SHIP_BEGIN)
        self._ship_end = client.register_script(scripts.SHIP_END)
        self._ships = client.register_script(scripts.SHIPS)
        self._resync_apply = client.register_script(scripts.RESYNC_APPLY)
        self.ships_key = self.prefix + "ships"
        self.resync_key = self.prefix + "resync"
        self._limits: dict[Decimal, int] = {}  # limit_to_pico of the budgets' limits (~2 µs each)

    def counter_key(self, counter: str) -> str:
        return f"{self.prefix}b:{counter}"

    def reservation_key(self, request_id: str) -> str:
        return f"{self.prefix}rsv:{request_id}"

    def key_ttl(self, counter: str) -> int | None:
        """Seconds a counter's hash lives after it is loaded; None (no TTL) for a lifetime total."""
        return None if counter.endswith(TOTAL_SUFFIX) else self.window_ttl

    async def missing(self, counters: Sequence[str]) -> list[str]:
        if not counters:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for counter in counters:
                pipe.hexists(self.counter_key(counter), "s")
            async with asyncio.timeout(COMMAND_TIMEOUT):
                loaded = await pipe.execute()
        return [c for c, exists in zip(counters, loaded, strict=True) if not exists]

    async def load(self, counter: str, spent: Decimal) -> None:
        ttl = self.key_ttl(counter)
        await within(
            self._load(keys=[self.counter_key(counter)], args=[spend_to_pico(spent), "" if ttl is None else ttl])
        )

    async def reserve(self, request_id: str, charges: Sequence[Charge], amount: Decimal, ttl: float) -> Refused | None:
        refused = await self.admit(request_id, charges, amount, ttl, (), 0, 0.0)
        assert not isinstance(refused, RateRefused)
        return refused

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
        """``Gate.admit`` in one script (see redis_scripts.ADMIT)."""
        pico = to_pico(amount)
        keys = [self.due_key, self.reservation_key(request_id)]
        args: list[str | int] = [
            self.prefix,
            PURGE_BATCH,
            request_id,
            pico,
            -pico,
            max(0, math.ceil(ttl * 1_000_000)),
            len(charges),
            int(tokens),
            RATE_KEY_TTL,
        ]
        for charge in charges:
            keys.append(self.counter_key(charge.counter))
            args += [charge.counter, self._limit_pico(charge.limit) if charge.blocking else ""]
        if limits:
            minute = minute_of(now)
            for scope, rpm, tpm in limits:
                keys.append(self.rate_key(scope, minute))
                args += ["" if rpm is None else int(rpm), "" if tpm is None else int(tpm)]
        result = await within(self._admit(keys=keys, args=args))
        if isinstance(result, int):
            self.expired += result
            return None
        self.expired += int(result[0])
        index = int(result[1])
        if index == -1:
            raise CounterMissing(orjson.loads(result[2]))
        if index == -2:
            return RateRefused(int(result[2]) - 1, 60 - now % 60, result[3])
        charge = charges[index - 1]
        return Refused(charge.counter, charge.limit, from_pico(result[2]), from_pico(result[3]))

    def _limit_pico(self, limit: Decimal) -> int:
        pico = self._limits.get(limit)
        if pico is None:
            if len(self._limits) >= 4096:  # limits edited many times over: start again
                self._limits.clear()
            pico = self._limits[limit] = limit_to_pico(limit)
        return pico

    async def settle(
        self, request_id: str, cost: Decimal, scopes: Sequence[str] = (), tokens: int = 0, now: float = 0.0
    ) -> list[CounterState]:
        """``CounterStore.settle``, with ``Gate.settle``'s token correction in the same script."""
        pico = spend_to_pico(cost)
        keys = [self.due_key, self.reservation_key(request_id)]
        if tokens and scopes:
            minute = minute_of(now)
            keys += [self.rate_key(scope, minute) for scope in scopes]
        reply = await within(
            self._settle(keys=keys, args=[self.prefix, request_id, pico, int(tokens) if scopes else 0, self.window_ttl])
        )
        result = orjson.loads(reply)
        if not result:
            return []
        # The script answers with the values before its change (exact strings); add them here.
        released = int(result[0])
        return [
            CounterState(
                result[i],
                from_pico(min(int(result[i + 1]) + pico, INT64_MAX)),  # a full counter stays full
                from_pico(int(result[i + 2]) + released),
            )
            for i in range(1, len(result), 3)
        ]

    async def release(self, request_id: str) -> None:
        await within(
            self._release(keys=[self.due_key, self.reservation_key(request_id)], args=[self.prefix, request_id])
        )

    async def states(self, counters: Sequence[str]) -> dict[str, CounterState]:
        if not counters:
            return {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for counter in counters:
                pipe.hmget(self.counter_key(counter), ["s", "r"])
            async with asyncio.timeout(COMMAND_TIMEOUT):
                values = await pipe.execute()
        return {
            c: CounterState(c, from_pico(spent or 0), from_pico(reserved or 0))
            for c, (spent, reserved) in zip(counters, values, strict=True)
        }

    # --- the re-sync protocol (budgets/resync.py) ---------------------------------------------
    async def ship_begin(self, token: str, lease: float) -> float:
        wait_ms = int(
            await within(
                self._ship_begin(keys=[self.resync_key, self.ships_key], args=[token, max(1, math.ceil(lease * 1000))])
            )
        )
        return wait_ms / 1000

    async def ship_end(self, token: str, shipped: Sequence[tuple[str, Decimal | None]]) -> None:
        args: list[str | int] = [self.prefix, token]
        for request_id, cost in shipped:
            args += [request_id, spend_to_pico(cost or ZERO)]
        await within(self._ship_end(keys=[self.ships_key], args=args))

    async def ships_in_progress(self) -> int:
        return int(await within(self._ships(keys=[self.ships_key])))

    async def resync_lock(self, token: str, ttl: float) -> bool:
        return bool(await within(self._redis.set(self.resync_key, token, nx=True, px=max(1, math.ceil(ttl * 1000)))))

    async def resync_unlock(self, token: str) -> None:
        # Only our own lock: compare and delete in one step.
        await within(self._resync_apply(keys=[self.resync_key], args=[token]))

    async def resync_apply(self, token: str, spends: dict[str, Decimal]) -> dict[str, tuple[Decimal, Decimal]] | None:
        counters = list(spends)
        reply = await within(
            self._resync_apply(
                keys=[self.resync_key, *(self.counter_key(c) for c in counters)],
                args=[token, *(spend_to_pico(spends[c]) for c in counters)],
            )
        )
        if reply == -1:
            return None
        return {
            counters[int(reply[i]) - 1]: (from_pico(reply[i + 1]), from_pico(reply[i + 2]))
            for i in range(0, len(reply), 3)
        }

    async def purge_expired(self) -> int:
        total = 0
        while True:
            purged = int(await within(self._purge(keys=[self.due_key], args=[self.prefix, PURGE_BATCH])))
            total += purged
            if purged < PURGE_BATCH:
                break
        self.expired += total
        return total


class RedisRateLimiter(_RedisNamespace):
    """``RateLimiter`` in Redis: fixed one-minute windows of ``now``, shared by every replica."""

    def __init__(self, client: Redis, *, namespace: str) -> None:
        super().__init__(client, namespace=namespace)
        # A rate limit alone is an admission without charges (nothing reserved, nothing purged).
        self._counters = RedisCounters(client, namespace=namespace)

    async def admit(
        self, limits: Sequence[tuple[str, int | None, int | None]], tokens: int, now: float
    ) -> float | None:
        refused = await self._counters.admit("", (), ZERO, 0, limits, tokens, now)
        return None if refused is None else refused.retry_after  # type: ignore[union-attr]

    async def add_tokens(self, scopes: Sequence[str], tokens: int, now: float) -> None:
        if not scopes or not tokens:
            return
        await self._counters.settle("", ZERO, scopes, tokens, now)


class RedisGate:
    """``Gate`` in Redis: one client (one connection pool) for the counters and the rate limits,
    and one script per admission and per settlement."""

    def __init__(self, client: Redis, *, namespace: str, window_ttl: int = WINDOW_KEY_TTL) -> None:
        self.counters = RedisCounters(client, namespace=namespace, window_ttl=window_ttl)
        self.limiter = RedisRateLimiter(client, namespace=namespace)

    @classmethod
    async def connect(cls, url: str, *, namespace: str, **kwargs: Any) -> Self:
        return await _connected(url, lambda client: cls(client, namespace=namespace, **kwargs))

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
        return await self.counters.admit(request_id, charges, amount, ttl, limits, tokens, now)

    async def settle(
        self, request_id: str, cost: Decimal, scopes: Sequence[str], tokens: int, now: float
    ) -> list[CounterState]:
        return await self.counters.settle(request_id, cost, scopes, tokens, now)

    async def close(self) -> None:
        await self.counters.close()  # the one client both use
