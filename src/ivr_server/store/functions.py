"""The Redis function library of the state store (docs/store.md, MODES-AND-HA §3.5).

Every change of a slot's state and every lease decision is made *inside* Redis, atomically, by
these functions, so that no client (a paused old holder, a node of an older version) can bypass
the fencing check by its timing: ``apply`` and ``drop`` compare the writer's epoch with the
slot's in the same atomic step as the write.

Loaded with ``FUNCTION LOAD REPLACE`` by :class:`~ivr_server.store.redis.RedisStore` when the
store has no library or an older :data:`VERSION` (``ivrs_version``). A newer library is kept: a
library must answer the calls of the previous version the same way (rolling upgrades), so bump
:data:`VERSION` on every change and keep the call signatures.

Keys (``P`` = ``ivrs:{<site>}:s:<slot>:``; the braces are a hash tag: a site's keys share one
Redis Cluster slot, as functions need): ``P o:<key>`` objects, ``P idx`` (set of object keys),
``P mark`` (hash stream -> n), ``P epoch``, ``P lease`` (``<node>:<epoch>``, ``PX``), ``P ver``
(the slot's writes: incremented by every ``apply`` and ``drop``, read by a standby that builds
a takeover ahead, docs/ha.md "Ready before the lease lapses"), and
``ivrs:{<site>}:slots`` (set of every slot ever acquired), ``ivrs:{<site>}:nodes`` and
``ivrs:{<site>}:nodes:until`` (hashes: each node's presence record and when it lapses).

Epochs: a slot's first epoch is the store's clock in milliseconds (``TIME``), then ``+1`` per
acquisition. A store restarted empty therefore never hands out an epoch a holder from before
the restart could still have: fencing survives the loss of the store's data.
"""

from __future__ import annotations

__all__ = ["LIBRARY", "VERSION"]

VERSION = 4
"""Bump on every change of :data:`LIBRARY` (an older library in the store is replaced). 3:
``ivrs_renew``'s optional reclaim argument (a store that is another incarnation), the nodes'
presence (``ivrs_heartbeat``, ``ivrs_presence``). 4: ``ivrs_apply`` and ``ivrs_drop`` count the
slot's writes (``P ver``; an optional fourth key, derived from the epoch's key when a client of
version 3 leaves it out)."""

LIBRARY = """#!lua name=ivrs

local VERSION = @VERSION@

-- The node of a lease value "<node>:<epoch>" (a node id may itself contain ':').
local function lease_node(value)
  return string.match(value, '^(.*):%d+$')
end

local function lease_epoch(value)
  return string.match(value, ':(%d+)$')
end

-- redis.call(command, [key,] items...) in runs of at most 4,000 items (an even number: pairs
-- stay whole), as Lua's unpack() is bounded (LUAI_MAXCSTACK).
local function bulk(command, key, items)
  local n = #items
  local step = 4000
  for first = 1, n, step do
    local last = math.min(first + step - 1, n)
    if key then
      redis.call(command, key, unpack(items, first, last))
    else
      redis.call(command, unpack(items, first, last))
    end
  end
end

-- Count one write of a slot: the fourth key, or (a client of library version 3) the epoch's
-- key with 'ver' for 'epoch'. A count the store lost (FLUSHALL) starts again from the clock in
-- microseconds, as epochs do: it never comes back to a value a reader saw before.
local function count_write(keys)
  local key = keys[4] or (string.sub(keys[1], 1, -6) .. 'ver')
  if redis.call('INCR', key) == 1 then
    local now = redis.call('TIME')
    redis.call('SET', key, string.format('%d', tonumber(now[1]) * 1000000 + tonumber(now[2])))
  end
end

-- KEYS: epoch, idx, mark[, ver]. ARGV: object prefix, epoch, #puts, #deletes, then the puts
-- (key, value)..., the deletes (key)..., the marks (stream, n)...
-- One MSET, one SADD, one DEL, one SREM, one HSET: the cost per object is a table slot.
local function apply(keys, args)
  local current = redis.call('GET', keys[1])
  if current ~= args[2] then
    return redis.error_reply('FENCED ' .. (current or 'none'))
  end
  count_write(keys)
  local prefix = args[1]
  local nputs = tonumber(args[3])
  local ndels = tonumber(args[4])
  local first_del = 5 + 2 * nputs
  local first_mark = first_del + ndels
  if ndels > 0 then
    local names, members = {}, {}
    for j = first_del, first_mark - 1 do
      members[#members + 1] = args[j]
      names[#names + 1] = prefix .. args[j]
    end
    bulk('DEL', nil, names)
    bulk('SREM', keys[2], members)
  end
  if nputs > 0 then
    local kv, members = {}, {}
    for j = 5, first_del - 1, 2 do
      members[#members + 1] = args[j]
      kv[#kv + 1] = prefix .. args[j]
      kv[#kv + 1] = args[j + 1]
    end
    bulk('MSET', nil, kv)
    bulk('SADD', keys[2], members)
  end
  if first_mark <= #args then
    local marks = {}
    for j = first_mark, #args do marks[#marks + 1] = args[j] end
    bulk('HSET', keys[3], marks)
  end
  return 1
end

-- KEYS: epoch, lease, slots. ARGV: slot, node, lease ms. Returns the new epoch, or nil when
-- another node holds a live lease.
local function acquire(keys, args)
  local held = redis.call('GET', keys[2])
  if held and lease_node(held) ~= args[2] then
    return nil
  end
  local epoch
  if redis.call('EXISTS', keys[1]) == 1 then
    epoch = redis.call('INCR', keys[1])
  else
    local now = redis.call('TIME')
    epoch = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
    redis.call('SET', keys[1], string.format('%d', epoch))
  end
  redis.call('SET', keys[2], args[2] .. ':' .. string.format('%d', epoch), 'PX', args[3])
  redis.call('SADD', keys[3], args[1])
  return epoch
end

-- KEYS: epoch, lease, slots. ARGV: slot, node, epoch, lease ms[, reclaim]. Returns 1 renewed,
-- 0 lost (another holder or a newer epoch), 2 renewed but the store had lost the slot (no
-- epoch). With reclaim = '1' (the caller's client found the store to be another incarnation
-- than the one it last renewed on: restarted from an older snapshot, or a replica promoted)
-- an older epoch is the store's past, not another holder (epochs only grow in one store):
-- the caller's epoch and lease are written back and 2 returned, as for an equal epoch.
local function renew(keys, args)
  local current = redis.call('GET', keys[1])
  local value = args[2] .. ':' .. args[3]
  local reclaim = args[5] == '1'
  if not current or (reclaim and tonumber(current) < tonumber(args[3])) then
    redis.call('SET', keys[1], args[3])
    redis.call('SET', keys[2], value, 'PX', args[4])
    redis.call('SADD', keys[3], args[1])
    return 2
  end
  if current ~= args[3] then
    return 0
  end
  local held = redis.call('GET', keys[2])
  if held and lease_node(held) ~= args[2] then
    return 0
  end
  redis.call('SET', keys[2], value, 'PX', args[4])
  if reclaim then
    return 2
  end
  return 1
end

-- KEYS: lease. ARGV: node, epoch.
local function release(keys, args)
  if redis.call('GET', keys[1]) == args[1] .. ':' .. args[2] then
    redis.call('DEL', keys[1])
    return 1
  end
  return 0
end

-- KEYS: epoch, idx, mark[, ver]. ARGV: object prefix, epoch.
local function drop(keys, args)
  local current = redis.call('GET', keys[1])
  if current ~= args[2] then
    return redis.error_reply('FENCED ' .. (current or 'none'))
  end
  count_write(keys)
  local members = redis.call('SMEMBERS', keys[2])
  for _, key in ipairs(members) do
    redis.call('DEL', args[1] .. key)
  end
  redis.call('DEL', keys[2], keys[3])
  return #members
end

-- KEYS: slots. ARGV: slot key prefix, then the slots to look at (none: every slot).
-- Returns slot, node, epoch, ms left... of every live lease.
local function leases(keys, args)
  local names = {}
  if #args > 1 then
    for j = 2, #args do names[#names + 1] = args[j] end
  else
    names = redis.call('SMEMBERS', keys[1])
  end
  local out = {}
  for _, name in ipairs(names) do
    local key = args[1] .. name .. ':lease'
    local held = redis.call('GET', key)
    if held then
      local left = redis.call('PTTL', key)
      if left > 0 then
        out[#out + 1] = name
        out[#out + 1] = lease_node(held)
        out[#out + 1] = tonumber(lease_epoch(held))
        out[#out + 1] = left
      end
    end
  end
  return out
end

-- KEYS: slots. ARGV: slot key prefix. Every slot with objects or marks.
local function slots(keys, args)
  local out = {}
  for _, name in ipairs(redis.call('SMEMBERS', keys[1])) do
    local base = args[1] .. name
    if redis.call('EXISTS', base .. ':idx', base .. ':mark') > 0 then
      out[#out + 1] = name
    end
  end
  return out
end

-- KEYS: records, deadlines (hashes: node -> record, node -> ms since 1970 it lapses at).
-- ARGV: node, record, ttl ms. A node's presence, written every poll; lapsed ones are pruned.
local function heartbeat(keys, args)
  local now = redis.call('TIME')
  local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  local until_ms = ms + tonumber(args[3])
  local deadlines = redis.call('HGETALL', keys[2])
  for j = 1, #deadlines, 2 do
    if deadlines[j] ~= args[1] and tonumber(deadlines[j + 1]) <= ms then
      redis.call('HDEL', keys[1], deadlines[j])
      redis.call('HDEL', keys[2], deadlines[j])
    end
  end
  redis.call('HSET', keys[1], args[1], args[2])
  redis.call('HSET', keys[2], args[1], string.format('%d', until_ms))
  return 1
end

-- KEYS: records, deadlines. Returns node, record, ms left... of every live presence.
local function presence(keys, args)
  local now = redis.call('TIME')
  local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  local deadlines = redis.call('HGETALL', keys[2])
  local out = {}
  for j = 1, #deadlines, 2 do
    local left = tonumber(deadlines[j + 1]) - ms
    if left > 0 then
      local record = redis.call('HGET', keys[1], deadlines[j])
      if record then
        out[#out + 1] = deadlines[j]
        out[#out + 1] = record
        out[#out + 1] = left
      end
    end
  end
  return out
end

redis.register_function('ivrs_apply', apply)
redis.register_function('ivrs_acquire', acquire)
redis.register_function('ivrs_renew', renew)
redis.register_function('ivrs_release', release)
redis.register_function('ivrs_drop', drop)
redis.register_function{function_name='ivrs_leases', callback=leases, flags={'no-writes'}}
redis.register_function{function_name='ivrs_slots', callback=slots, flags={'no-writes'}}
redis.register_function('ivrs_heartbeat', heartbeat)
redis.register_function{function_name='ivrs_presence', callback=presence, flags={'no-writes'}}
redis.register_function{
  function_name='ivrs_version', callback=function() return VERSION end, flags={'no-writes'}}
""".replace("@VERSION@", str(VERSION))
"""The library's Lua source (Redis 7 ``FUNCTION LOAD``)."""
