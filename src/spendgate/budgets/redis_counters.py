"""Budget counters and rate limits in Redis, shared by several gateway replicas.

``RedisCounters`` implements ``CounterStore`` and ``RedisRateLimiter`` implements ``RateLimiter``
with the same behaviour as the in-process ones (the same contract tests run against both), so
that a budget or a rate limit holds across every replica that uses the same Redis and namespace.

Atomicity. Every change is one Lua script (EVALSHA, loaded on first use): ``reserve`` purges
expired reservations, checks every blocking charge and reserves on all of them in one step, so
two replicas cannot both pass a nearly exhausted budget; ``settle`` and ``release`` change the
reservation record and the counters together; a multi-limit ``admit`` checks and counts every
scope together. A script refuses before it writes anything, and also checks for counter
overflow before writing, since Redis does not roll a script back if a command in it fails.

Exact money. Lua numbers are doubles, so amounts are stored as integers of pico-dollars
(1e-12 USD), as decimal strings in Redis, and changed only with INCRBY/DECRBY (exact 64-bit
integer arithmetic in the server); Lua converts them to numbers only to compare. Consequences:

* Decimal to pico rounds UP (ceiling): conservative for enforcement, and exact for any price
  with at most 6 decimals per million tokens (such a price times a token count is a whole
  number of pico-dollars). A limit rounds DOWN, also conservative. Pico to Decimal is exact.
* A counter holds at most 2^63 - 1 pico-dollars, about $9.2M per budget window; a write that
  would pass that raises ``redis.ResponseError`` and changes nothing.
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

Missing counters. ``missing`` reports counters whose spent key does not exist, so the gateway
loads them from the ledger (``load`` is SET NX). Every counter key of a calendar window
(``budget@2026-11``) gets a TTL of 40 days, refreshed on every write: a window key is never
used again once its window has passed, so it need not live forever. Keys of ``budget@total``
have no TTL. If Redis loses data, the affected counters are reported missing again and rebuilt
from the ledger (reservations lost with them simply end). Run Redis with
``maxmemory-policy noeviction``: an eviction policy would silently drop counters (the
``volatile-*`` ones prefer exactly the keys with a TTL).

Keys. Everything lives under ``{namespace}:{sg:{namespace}}:`` (literal braces: a Redis Cluster
hash tag), so all keys a script touches (including the expired reservations it purges, which it
cannot declare in advance) are in one cluster slot; distinct namespaces may use distinct slots.

Rate limits use fixed one-minute windows of the caller's ``now`` (as ``InProcessRateLimiter``),
one hash per scope and minute that expires two minutes after it was last written.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Context, Decimal
from typing import Any, Self

import orjson
from redis.asyncio import Redis

from spendgate.budgets.counters import Charge, CounterMissing, CounterState, Refused, minute_of

PICO_EXPONENT = 12
INT64_MAX = 2**63 - 1
WINDOW_KEY_TTL = 40 * 86400  # seconds; longer than any calendar window (a month is at most 31 days)
RATE_KEY_TTL = 120  # seconds
PURGE_BATCH = 1000  # expired reservations one script purges at most (reserve stays bounded)
TOTAL_SUFFIX = "@total"
_HUGE_DIGITS = 30  # pico-dollar amounts with more digits are all 'beyond range' alike
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


def limit_to_pico(limit: Decimal) -> int:
    """A budget limit in pico-dollars, rounded down (only compared, so no range limit)."""
    return _scaled(limit, ceiling=False)


def from_pico(pico: int | str) -> Decimal:
    """Integer pico-dollars to exact dollars, without trailing zeros (and never as ``1E+1``)."""
    value = Decimal(int(pico)).scaleb(-PICO_EXPONENT, context=_EXACT).normalize(_EXACT)
    if value.as_tuple().exponent > 0:  # type: ignore[operator]
        value = value.quantize(Decimal(1), context=_EXACT)
    return value


# -- Lua -----------------------------------------------------------------------------------------

# Key layout under the prefix P:  P.."spent:"..counter, P.."reserved:"..counter (integer pico
# strings), P.."res:"..request_id (hash: a = amount, c = JSON list of counters), P.."deadlines"
# (sorted set of request ids by deadline in server microseconds), P.."rate:"..scope..":"..minute.
_LUA_COMMON = """
local OVERFLOW = 9.2e18

-- TTLs stay strings: a Lua number passed to a command may be formatted with an exponent.
local function ttl_for(counter, window_ttl)
  if string.sub(counter, -6) == '@total' then return nil end
  return window_ttl
end

local function touch(key, ttl)
  if ttl then redis.call('EXPIRE', key, ttl) end
end

local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- End a reservation: drop its record and deadline, release its amount from its counters.
-- Returns its counters, or nil when it does not exist (settled, released, purged or lost).
local function finish(prefix, rid, window_ttl)
  local rkey = prefix .. 'res:' .. rid
  local rec = redis.call('HMGET', rkey, 'a', 'c')
  redis.call('ZREM', prefix .. 'deadlines', rid)
  if not rec[1] then return nil end
  redis.call('DEL', rkey)
  local counters = cjson.decode(rec[2])
  for _, counter in ipairs(counters) do
    local key = prefix .. 'reserved:' .. counter
    -- A reserved key can only be gone if it expired (a past window) or Redis lost data:
    -- then there is nothing to release, and no negative key is created.
    if redis.call('EXISTS', key) == 1 then
      redis.call('DECRBY', key, rec[1])
      touch(key, ttl_for(counter, window_ttl))
    end
  end
  return counters
end

local function purge(prefix, now, limit, window_ttl)
  local ids = redis.call('ZRANGEBYSCORE', prefix .. 'deadlines', '-inf', now, 'LIMIT', 0, limit)
  for _, rid in ipairs(ids) do finish(prefix, rid, window_ttl) end
  return #ids
end
"""

# KEYS: deadlines, reservation, then (spent, reserved) per charge.
# ARGV: prefix, window_ttl, purge_limit, request_id, amount, ttl_us, then (counter, limit) per
# charge, limit '' when the charge does not block.
# Returns {purged} when reserved (or already reserved), {purged, index, spent, reserved} when refused,
# {purged, -1, json list of counters} when some counter was never loaded (nothing changed).
_LUA_RESERVE = (
    _LUA_COMMON
    + """
local prefix, window_ttl = ARGV[1], ARGV[2]
local purged = purge(prefix, now_us(), ARGV[3], window_ttl)
local rid, amount, ttl_us = ARGV[4], ARGV[5], tonumber(ARGV[6])
if redis.call('EXISTS', KEYS[2]) == 1 then return {purged} end
local n = (#KEYS - 2) / 2
-- A counter Redis does not have must be rebuilt from the ledger first: report, change nothing.
local missing = {}
for i = 1, n do
  if redis.call('EXISTS', KEYS[1 + 2 * i]) == 0 then missing[#missing + 1] = ARGV[5 + 2 * i] end
end
if #missing > 0 then return {purged, -1, cjson.encode(missing)} end
local a = tonumber(amount)
for i = 1, n do
  local spent = redis.call('GET', KEYS[1 + 2 * i]) or '0'
  local reserved = redis.call('GET', KEYS[2 + 2 * i]) or '0'
  local limit = ARGV[6 + 2 * i]
  if limit ~= '' then
    local s, l = tonumber(spent), tonumber(limit)
    if s >= l or s + tonumber(reserved) + a > l then return {purged, i, spent, reserved} end
  end
  if math.abs(tonumber(reserved) + a) > OVERFLOW then
    return redis.error_reply('spendgate: reserved would overflow on ' .. ARGV[5 + 2 * i])
  end
end
local counters = {}
for i = 1, n do
  local counter = ARGV[5 + 2 * i]
  counters[i] = counter
  redis.call('INCRBY', KEYS[2 + 2 * i], amount)
  touch(KEYS[2 + 2 * i], ttl_for(counter, window_ttl))
end
redis.call('HSET', KEYS[2], 'a', amount, 'c', cjson.encode(counters))
redis.call('ZADD', KEYS[1], now_us() + ttl_us, rid)
return {purged}
"""
)

# KEYS: deadlines, reservation.  ARGV: prefix, window_ttl, request_id, cost.
# Returns {} when there is no such reservation, else {counter, spent, reserved, ...}.
_LUA_SETTLE = (
    _LUA_COMMON
    + """
local prefix, window_ttl, rid, cost = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local rec = redis.call('HGET', KEYS[2], 'c')
if not rec then
  redis.call('ZREM', KEYS[1], rid)
  return {}
end
local c = tonumber(cost)
for _, counter in ipairs(cjson.decode(rec)) do
  local spent = redis.call('GET', prefix .. 'spent:' .. counter) or '0'
  if math.abs(tonumber(spent) + c) > OVERFLOW then
    return redis.error_reply('spendgate: spent would overflow on ' .. counter)
  end
end
local out = {}
for _, counter in ipairs(finish(prefix, rid, window_ttl)) do
  local skey, rkey = prefix .. 'spent:' .. counter, prefix .. 'reserved:' .. counter
  redis.call('INCRBY', skey, cost)
  touch(skey, ttl_for(counter, window_ttl))
  out[#out + 1] = counter
  out[#out + 1] = redis.call('GET', skey)
  out[#out + 1] = redis.call('GET', rkey) or '0'
end
return out
"""
)

# KEYS: deadlines, reservation.  ARGV: prefix, window_ttl, request_id.
_LUA_RELEASE = (
    _LUA_COMMON
    + """
finish(ARGV[1], ARGV[3], ARGV[2])
return 0
"""
)

# KEYS: deadlines.  ARGV: prefix, window_ttl, purge_limit.  Returns how many were purged.
_LUA_PURGE = (
    _LUA_COMMON
    + """
return purge(ARGV[1], now_us(), ARGV[3], ARGV[2])
"""
)

# KEYS: one hash per (scope, minute).  ARGV: tokens, key_ttl, then (rpm, tpm) per key, '' for none.
# Returns 0 when admitted (and counted on every key), else the 1-based index of the refusing key.
_LUA_ADMIT = """
local tokens, key_ttl = ARGV[1], ARGV[2]
local t = tonumber(tokens)
for i, key in ipairs(KEYS) do
  local rpm, tpm = ARGV[1 + 2 * i], ARGV[2 + 2 * i]
  local counts = redis.call('HMGET', key, 'n', 't')
  if rpm ~= '' and tonumber(counts[1] or '0') + 1 > tonumber(rpm) then return i end
  if tpm ~= '' and tonumber(counts[2] or '0') + t > tonumber(tpm) then return i end
end
for _, key in ipairs(KEYS) do
  redis.call('HINCRBY', key, 'n', 1)
  redis.call('HINCRBY', key, 't', tokens)
  redis.call('EXPIRE', key, key_ttl)
end
return 0
"""


# -- clients -------------------------------------------------------------------------------------


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


class _RedisNamespace:
    """A Redis client and the key prefix of one namespace."""

    def __init__(self, client: Redis, *, namespace: str = "spendgate") -> None:
        if not namespace or any(ch in namespace for ch in "{}"):
            raise ValueError(f"namespace must be non-empty and without braces: {namespace!r}")
        self._redis = client
        self.namespace = namespace
        self.prefix = f"{namespace}:{{sg:{namespace}}}:"

    @classmethod
    async def connect(cls, url: str, *, namespace: str = "spendgate", **kwargs: Any) -> Self:
        """Connect to the Redis at ``url`` (e.g. ``redis://host:6379/0``) and check it answers."""
        client = Redis.from_url(url, decode_responses=True)
        try:
            await client.ping()
            return cls(client, namespace=namespace, **kwargs)
        except BaseException:
            await client.aclose()
            raise

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
    """``CounterStore`` in Redis: budgets hold across every replica sharing the namespace."""

    def __init__(self, client: Redis, *, namespace: str = "spendgate", window_ttl: int = WINDOW_KEY_TTL) -> None:
        super().__init__(client, namespace=namespace)
        self.window_ttl = window_ttl
        self.expired = 0
        self._deadlines = self.prefix + "deadlines"
        self._reserve = client.register_script(_LUA_RESERVE)
        self._settle = client.register_script(_LUA_SETTLE)
        self._release = client.register_script(_LUA_RELEASE)
        self._purge = client.register_script(_LUA_PURGE)

    def spent_key(self, counter: str) -> str:
        return f"{self.prefix}spent:{counter}"

    def reserved_key(self, counter: str) -> str:
        return f"{self.prefix}reserved:{counter}"

    def reservation_key(self, request_id: str) -> str:
        return f"{self.prefix}res:{request_id}"

    def key_ttl(self, counter: str) -> int | None:
        """Seconds a counter's keys live after a write; None (no TTL) for a lifetime total."""
        return None if counter.endswith(TOTAL_SUFFIX) else self.window_ttl

    async def missing(self, counters: Sequence[str]) -> list[str]:
        if not counters:
            return []
        values = await self._redis.mget([self.spent_key(c) for c in counters])
        return [c for c, value in zip(counters, values, strict=True) if value is None]

    async def load(self, counter: str, spent: Decimal) -> None:
        await self._redis.set(self.spent_key(counter), to_pico(spent), nx=True, ex=self.key_ttl(counter))

    async def reserve(self, request_id: str, charges: Sequence[Charge], amount: Decimal, ttl: float) -> Refused | None:
        keys = [self._deadlines, self.reservation_key(request_id)]
        args: list[str | int] = [
            self.prefix,
            self.window_ttl,
            PURGE_BATCH,
            request_id,
            to_pico(amount),
            max(0, math.ceil(ttl * 1_000_000)),
        ]
        for charge in charges:
            keys += [self.spent_key(charge.counter), self.reserved_key(charge.counter)]
            args += [charge.counter, limit_to_pico(charge.limit) if charge.blocking else ""]
        result = await self._reserve(keys=keys, args=args)
        self.expired += int(result[0])
        if len(result) == 1:
            return None
        if int(result[1]) == -1:
            raise CounterMissing(orjson.loads(result[2]))
        charge = charges[int(result[1]) - 1]
        return Refused(charge.counter, charge.limit, from_pico(result[2]), from_pico(result[3]))

    async def settle(self, request_id: str, cost: Decimal) -> list[CounterState]:
        result = await self._settle(
            keys=[self._deadlines, self.reservation_key(request_id)],
            args=[self.prefix, self.window_ttl, request_id, to_pico(cost)],
        )
        return [
            CounterState(result[i], from_pico(result[i + 1]), from_pico(result[i + 2]))
            for i in range(0, len(result), 3)
        ]

    async def release(self, request_id: str) -> None:
        await self._release(
            keys=[self._deadlines, self.reservation_key(request_id)],
            args=[self.prefix, self.window_ttl, request_id],
        )

    async def states(self, counters: Sequence[str]) -> dict[str, CounterState]:
        if not counters:
            return {}
        keys = [self.spent_key(c) for c in counters] + [self.reserved_key(c) for c in counters]
        values = await self._redis.mget(keys)
        n = len(counters)
        return {
            c: CounterState(c, from_pico(values[i] or 0), from_pico(values[n + i] or 0)) for i, c in enumerate(counters)
        }

    async def purge_expired(self) -> int:
        total = 0
        while True:
            purged = int(await self._purge(keys=[self._deadlines], args=[self.prefix, self.window_ttl, PURGE_BATCH]))
            total += purged
            if purged < PURGE_BATCH:
                break
        self.expired += total
        return total


class RedisRateLimiter(_RedisNamespace):
    """``RateLimiter`` in Redis: fixed one-minute windows of ``now``, shared by every replica."""

    def __init__(self, client: Redis, *, namespace: str = "spendgate") -> None:
        super().__init__(client, namespace=namespace)
        self._admit = client.register_script(_LUA_ADMIT)

    def rate_key(self, scope: str, minute: int) -> str:
        return f"{self.prefix}rate:{scope}:{minute}"

    async def admit(
        self, limits: Sequence[tuple[str, int | None, int | None]], tokens: int, now: float
    ) -> float | None:
        minute = minute_of(now)
        keys = [self.rate_key(scope, minute) for scope, _, _ in limits]
        args: list[str | int] = [int(tokens), RATE_KEY_TTL]
        for _, rpm, tpm in limits:
            args += ["" if rpm is None else int(rpm), "" if tpm is None else int(tpm)]
        refused = int(await self._admit(keys=keys, args=args))
        return None if refused == 0 else 60 - now % 60

    async def add_tokens(self, scopes: Sequence[str], tokens: int, now: float) -> None:
        if not scopes:
            return
        minute = minute_of(now)
        async with self._redis.pipeline(transaction=True) as pipe:
            for scope in scopes:
                key = self.rate_key(scope, minute)
                pipe.hincrby(key, "t", int(tokens))
                pipe.expire(key, RATE_KEY_TTL)
            await pipe.execute()
