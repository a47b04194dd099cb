"""The Lua scripts behind the Redis counters and rate limits (see redis_counters.py for the
guarantees). Each request costs two of them: ``ADMIT`` (purge, budget reservation and rate-limit
admission, all or nothing) and ``SETTLE`` (spend, release, token correction), so every round trip
counts and each script touches as few keys, with as few commands, as it can.

Key layout under the prefix P (all in one cluster slot, see redis_counters.py):

* ``P.."b:"..counter``: a hash per budget window, ``s`` = spent and ``r`` = reserved, integer
  pico-dollars as strings. It exists once ``load`` has set ``s`` from the ledger; its TTL (none for
  ``@total``) is set then, once: a window's counter is loaded at its first use, within the window,
  so a TTL longer than any window outlives it without being refreshed on every write. Scripts only
  change a hash that exists, so an expired or lost one is reported missing, never half rebuilt.
* ``P.."rsv:"..request_id``: a hash per live reservation: ``a`` = amount, ``n`` = minus the amount
  (HINCRBY has no decrement and Redis does not parse ``-0``, so Python writes it, exactly), ``c``
  = JSON list of its counters.
* ``P.."due"``: a sorted set of the live reservations' request ids by deadline, in microseconds
  of the Redis server's clock.
* ``P.."rate:"..scope..":"..minute``: a hash per rate-limit scope and minute, ``n`` = requests,
  ``t`` = tokens; its TTL is set when the minute's first request creates it.

What the counter re-sync needs (budgets/resync.py has the reasoning):

* in each counter hash, ``u`` = spend settled here whose event the ledger writers have not yet
  confirmed shipped, and ``p`` = the cost of events the ledger already has whose reservation is
  still live (shipped before their settlement). ``s - u + p`` is then what the ledger holds of
  the counter's spend, whatever is in flight, so a re-sync sets ``s = ledger + u - p``;
* ``P.."stl:"..request_id``: a settlement awaiting its event's shipping, ``c`` = cost, ``k`` =
  JSON list of the counters it was added to; the writer's confirmation takes it out of ``u``;
* a reservation's ``x`` = the cost of its event, once shipped before the settlement (added to
  ``p``; the settlement moves it to ``s``, a release or purge just drops it from ``p``);
* ``P.."ships"``: a sorted set of ledger batches being written (writer token -> lease deadline,
  ms of the server's clock), and ``P.."resync"``: the re-sync lock, a string with a TTL. A writer
  starts no batch while the lock is held; the re-sync reads the ledger only once no batch is
  being written, so the ledger it reads and the ``u``/``p`` it applies agree.

A script checks everything before it writes anything: Redis does not roll back a script whose
command fails halfway (an overflowing HINCRBY), so overflow is checked in Lua first. Spend is
never refused for overflow: a counter it would overflow is set full instead (``FULL``).
"""

from __future__ import annotations

_COMMON = """
local OVERFLOW = 9.2e18
local FULL = '9223372036854775807'  -- 2^63 - 1 pico-dollars: a saturated counter

local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- The negation of an integer string, exactly (HINCRBY has no decrement; Redis refuses '-0').
local function neg(v)
  if v == '0' then return '0' end
  if string.sub(v, 1, 1) == '-' then return string.sub(v, 2) end
  return '-' .. v
end

-- End reservation rid: release its amount and add cost (nil: nothing spent) to its counters.
-- A settlement (cost given, stl_ttl its record's TTL) is also added to the counters' unshipped
-- ``u`` and recorded under stl:rid until the ledger writer confirms the event shipped, unless the
-- event was shipped first (``x``): then its cost moves from ``p`` to ``s``.
-- Returns {}, when there is no such reservation (settled, released, purged or lost), else
-- {-amount, counter, spent, reserved, ...} for the counters still there, their values BEFORE this
-- change: HINCRBY answers with a Lua number, inexact past 2^53, so the caller adds the exact
-- integers itself. A cost that would overflow a counter leaves it FULL: the request is settled
-- whatever its cost (an error here would leave its reservation holding the budget).
local function finish(prefix, rid, cost, stl_ttl)
  local rkey, due = prefix .. 'rsv:' .. rid, prefix .. 'due'
  local rec = redis.call('HMGET', rkey, 'n', 'c', 'x')
  if not rec[1] then
    redis.call('ZREM', due, rid)
    return {}
  end
  -- A counter can only be gone if its window expired or Redis lost data: nothing to release
  -- or add there, and no half counter is created (it is loaded from the ledger again).
  local out, full = {rec[1]}, {}
  for _, counter in ipairs(cjson.decode(rec[2])) do
    local counts = redis.call('HMGET', prefix .. 'b:' .. counter, 's', 'r')
    if counts[1] then
      out[#out + 1] = counter
      out[#out + 1] = counts[1]
      out[#out + 1] = counts[2] or '0'
      full[#out] = cost and tonumber(counts[1]) + tonumber(cost) > OVERFLOW
    end
  end
  redis.call('DEL', rkey)
  redis.call('ZREM', due, rid)
  local shipped = rec[3]
  local unshipped = cost and cost ~= '0' and not shipped
  local counted = {}
  for i = 2, #out, 3 do
    local key = prefix .. 'b:' .. out[i]
    if full[i + 2] then
      redis.call('HSET', key, 's', FULL)
    elseif cost then
      redis.call('HINCRBY', key, 's', cost)
    end
    redis.call('HINCRBY', key, 'r', rec[1])
    if shipped then
      if shipped ~= '0' then redis.call('HINCRBY', key, 'p', neg(shipped)) end
    elseif unshipped and not full[i + 2] then
      -- A counter this settlement fills is full for good: nothing to track for the re-sync.
      local u = redis.call('HGET', key, 'u')
      if not u or tonumber(u) + tonumber(cost) <= OVERFLOW then
        redis.call('HINCRBY', key, 'u', cost)
        counted[#counted + 1] = out[i]
      end
    end
  end
  if #counted > 0 then
    local skey = prefix .. 'stl:' .. rid
    redis.call('HSET', skey, 'c', cost, 'k', cjson.encode(counted))
    redis.call('EXPIRE', skey, stl_ttl)
  end
  return out
end

-- Release the reservations past their deadline (of dead processes), at most `limit` of them.
local function purge(prefix, now, limit)
  local ids = redis.call('ZRANGEBYSCORE', prefix .. 'due', '-inf', now, 'LIMIT', 0, limit)
  for _, rid in ipairs(ids) do finish(prefix, rid, nil, nil) end
  return #ids
end
"""

# KEYS: due, the reservation, then one counter hash per charge, then one rate hash per limit.
# ARGV: prefix, purge_limit, request_id, amount, -amount, ttl_us, number of charges, tokens,
# rate_ttl, then (counter, limit) per charge (limit '' when it does not block), then (rpm, tpm)
# per limit ('' for none).
# Without charges nothing is purged or reserved (a rate limit alone); without limits nothing is
# counted. Returns the number purged when admitted (or already reserved by this request id): a
# bare integer, the cheapest reply for redis-py to parse. Else nothing changed but the purge, and
# it returns {purged, -1, json list of counters} when some counter was never loaded, {purged, i,
# spent, reserved} when charge i refuses, {purged, -2, j, 'rpm' or 'tpm'} when limit j refuses
# (its requests or its tokens used up).
ADMIT = (
    _COMMON
    + """
local prefix, rid, amount, neg = ARGV[1], ARGV[3], ARGV[4], ARGV[5]
local nb, tokens, rate_ttl = tonumber(ARGV[7]), ARGV[8], ARGV[9]
local purged = 0
local now
if nb > 0 then
  now = now_us()
  purged = purge(prefix, now, ARGV[2])
  if redis.call('EXISTS', KEYS[2]) == 1 then return purged end  -- a retried admit: done already
  local counts, missing = {}, {}
  for i = 1, nb do
    counts[i] = redis.call('HMGET', KEYS[2 + i], 's', 'r')
    if not counts[i][1] then missing[#missing + 1] = ARGV[8 + 2 * i] end
  end
  if #missing > 0 then return {purged, -1, cjson.encode(missing)} end
  local a = tonumber(amount)
  for i = 1, nb do
    local spent, reserved, limit = counts[i][1], counts[i][2] or '0', ARGV[9 + 2 * i]
    if limit ~= '' then
      local s, l = tonumber(spent), tonumber(limit)
      if s >= l or s + tonumber(reserved) + a > l then return {purged, i, spent, reserved} end
    end
    if math.abs(tonumber(reserved) + a) > OVERFLOW then
      return redis.error_reply('spendgate: reserved would overflow on ' .. ARGV[8 + 2 * i])
    end
  end
end
local first_rate = 2 + nb
local t = tonumber(tokens)
local fresh = {}
for j = 1, #KEYS - first_rate do
  local rpm, tpm = ARGV[8 + 2 * nb + 2 * j], ARGV[9 + 2 * nb + 2 * j]
  local counts = redis.call('HMGET', KEYS[first_rate + j], 'n', 't')
  if rpm ~= '' and tonumber(counts[1] or '0') + 1 > tonumber(rpm) then return {purged, -2, j, 'rpm'} end
  if tpm ~= '' and tonumber(counts[2] or '0') + t > tonumber(tpm) then return {purged, -2, j, 'tpm'} end
  fresh[j] = not counts[1]
end
if nb > 0 then
  local counters = {}
  for i = 1, nb do
    counters[i] = ARGV[8 + 2 * i]
    redis.call('HINCRBY', KEYS[2 + i], 'r', amount)
  end
  redis.call('HSET', KEYS[2], 'a', amount, 'n', neg, 'c', cjson.encode(counters))
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[6]), rid)
end
for j = 1, #KEYS - first_rate do
  local key = KEYS[first_rate + j]
  redis.call('HINCRBY', key, 'n', 1)
  redis.call('HINCRBY', key, 't', tokens)
  if fresh[j] then redis.call('EXPIRE', key, rate_ttl) end
end
return purged
"""
)

# KEYS: due, the reservation, then one rate hash per scope to correct.
# ARGV: prefix, request_id, cost, token correction ('0' for none), TTL of the settlement record.
# Returns what ``finish`` returns, as one JSON string: redis-py's parser costs far more per
# element of an array reply than for one string (~30 µs of CPU for ten elements). The token
# correction applies to the rate hashes that still exist: one that expired belongs to a minute
# long past, which no admission reads any more.
SETTLE = (
    _COMMON
    + """
local out = finish(ARGV[1], ARGV[2], ARGV[3], ARGV[5])
local tokens = ARGV[4]
if tokens ~= '0' then
  for j = 3, #KEYS do
    if redis.call('EXISTS', KEYS[j]) == 1 then redis.call('HINCRBY', KEYS[j], 't', tokens) end
  end
end
if #out == 0 then return '[]' end  -- cjson encodes an empty table as an object
return cjson.encode(out)
"""
)

# KEYS: due, the reservation.  ARGV: prefix, request_id.
RELEASE = (
    _COMMON
    + """
finish(ARGV[1], ARGV[2], nil, nil)
return 0
"""
)

# KEYS: due.  ARGV: prefix, purge_limit.  Returns how many were purged.
PURGE = (
    _COMMON
    + """
return purge(ARGV[1], now_us(), ARGV[2])
"""
)

# KEYS: the counter hash.  ARGV: spent, ttl ('' for none).  Sets spent unless already loaded.
LOAD = """
if redis.call('HSETNX', KEYS[1], 's', ARGV[1]) == 1 and ARGV[2] ~= '' then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


# --- the counter re-sync's protocol (see the module docstring and budgets/resync.py) ----------

# KEYS: the re-sync lock, the ships set.  ARGV: writer token, lease in ms.
# Returns 0 when the batch may be written (the lease is taken), else the ms the lock has left.
SHIP_BEGIN = """
local wait = redis.call('PTTL', KEYS[1])
if wait > 0 then return wait end
local t = redis.call('TIME')
redis.call('ZADD', KEYS[2], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[2]), ARGV[1])
return 0
"""

# KEYS: the ships set.  ARGV: prefix, writer token, then (request_id, cost) per event shipped.
# A settled event leaves ``u``; one not settled yet (its reservation live) is marked shipped, its
# cost held in ``p`` until the settlement. The lease ends.
SHIP_END = (
    _COMMON
    + """
local prefix = ARGV[1]
for i = 3, #ARGV, 2 do
  local rid, cost = ARGV[i], ARGV[i + 1]
  local skey = prefix .. 'stl:' .. rid
  local st = redis.call('HMGET', skey, 'c', 'k')
  if st[1] then
    for _, counter in ipairs(cjson.decode(st[2])) do
      local key = prefix .. 'b:' .. counter
      if redis.call('HEXISTS', key, 's') == 1 then redis.call('HINCRBY', key, 'u', neg(st[1])) end
    end
    redis.call('DEL', skey)
  else
    local rkey = prefix .. 'rsv:' .. rid
    local rec = redis.call('HMGET', rkey, 'c', 'x')
    if rec[1] and not rec[2] then
      redis.call('HSET', rkey, 'x', cost)
      if cost ~= '0' then
        for _, counter in ipairs(cjson.decode(rec[1])) do
          local key = prefix .. 'b:' .. counter
          if redis.call('HEXISTS', key, 's') == 1 then redis.call('HINCRBY', key, 'p', cost) end
        end
      end
    end
  end
end
redis.call('ZREM', KEYS[1], ARGV[2])
return 0
"""
)

# KEYS: the ships set.  Drops the leases past their deadline (writers that died mid-batch);
# returns how many batches are being written.
SHIPS = """
local t = redis.call('TIME')
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
return redis.call('ZCARD', KEYS[1])
"""

# KEYS: the re-sync lock, then one counter hash per counter.  ARGV: lock token, then the ledger's
# spend per counter (pico-dollars). Sets each existing counter's ``s`` to ledger + u - p with
# exact integer commands (a full counter stays full), and ends the lock. Returns -1 if the lock
# was lost (nothing changed), else {counter index, spent before, spent after, ...} (strings).
RESYNC_APPLY = (
    _COMMON
    + """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local out = {}
for i = 2, #KEYS do
  local v = redis.call('HMGET', KEYS[i], 's', 'u', 'p')
  if v[1] then
    local ledger, u, p = ARGV[i], v[2] or '0', v[3] or '0'
    local target = tonumber(ledger) + tonumber(u) - tonumber(p)
    if target > OVERFLOW then
      redis.call('HSET', KEYS[i], 's', FULL)
    elseif target < 0 then
      redis.call('HSET', KEYS[i], 's', '0')
    else
      redis.call('HSET', KEYS[i], 's', ledger)
      if u ~= '0' then redis.call('HINCRBY', KEYS[i], 's', u) end
      if p ~= '0' then redis.call('HINCRBY', KEYS[i], 's', neg(p)) end
    end
    out[#out + 1] = i - 1
    out[#out + 1] = v[1]
    out[#out + 1] = redis.call('HGET', KEYS[i], 's')
  end
end
redis.call('DEL', KEYS[1])
return out
"""
)
