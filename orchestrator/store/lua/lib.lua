-- Shared by every script: prepended to each one when it is loaded (orchestrator/store/scripts.py).

-- Statuses a unit (a step or a for_each item) never leaves.
local FINISHED = {succeeded = true, failed = true, skipped = true, cancelled = true}

local function is_finished(status)
  return FINISHED[status] == true
end

-- A unit's status as stored. A for_each item has no hash until it is first claimed: missing
-- means queued for an item, pending for a step.
local function unit_status(stored, is_item)
  if stored then return stored end
  if is_item == '1' then return 'queued' end
  return 'pending'
end

-- Whether the lease of `member` in the zset `leases` is still alive at `now` (epoch s).
local function lease_alive(leases, member, now)
  local expiry = redis.call('ZSCORE', leases, member)
  return expiry and tonumber(expiry) > now
end

-- The execution running a unit died (its lease expired unrenewed): count it on the unit.
-- Returns the count and whether it is past `max_recoveries` (a poison unit: fail it instead).
local function count_recovery(unit, max_recoveries)
  local recoveries = redis.call('HINCRBY', unit, 'recoveries', 1)
  return recoveries, recoveries > max_recoveries
end

-- Append an event to a run's history stream (`KEYS` of the caller name it); the stream keeps
-- about the last HISTORY_EVENTS events of a run.
local HISTORY_EVENTS = 100000

local function record(history, at, event, ...)
  redis.call('XADD', history, 'MAXLEN', '~', HISTORY_EVENTS, '*', 'at', at, 'event', event, ...)
end

-- Values a script adds to lists and sorted sets as it goes, sent at its end (`send`) as one
-- command per key and BATCH values (members, for a ZADD; within Lua's stack for unpack) instead
-- of one per value: a run's 10,000 roots are 10 LPUSHes, not 10,000. A list gets its values in
-- the order they were added, as that many LPUSHes would leave them. Events recorded in a loop
-- (`writes.record`) are added at once, in order, and their stream is trimmed once more at `send`
-- instead of by each XADD.
local BATCH = 1000

local function batched()
  local pending, order, streams, writes = {}, {}, {}, {}
  -- The values waiting for `command` on `key`; `width` values make one item (a ZADD's score and member).
  local function values(command, key, width)
    local id = command .. ' ' .. key
    if not pending[id] then
      pending[id] = {command = command, key = key, step = BATCH * width}
      order[#order + 1] = pending[id]
    end
    return pending[id]
  end
  function writes.lpush(key, value)
    local list = values('LPUSH', key, 1)
    list[#list + 1] = value
  end
  function writes.zadd(key, score, member)
    local set = values('ZADD', key, 2)
    set[#set + 1], set[#set + 2] = score, member
  end
  function writes.record(history, at, event, ...)
    if streams[history] then  -- the stream's second event and later: trimmed once, at `send`
      redis.call('XADD', history, '*', 'at', at, 'event', event, ...)
      streams[history] = streams[history] + 1
    else  -- its first: as `record` (one event, as a chain's completion fires, costs no XTRIM)
      record(history, at, event, ...)
      streams[history] = 1
    end
  end
  function writes.send()
    for _, w in ipairs(order) do
      for i = 1, #w, w.step do
        redis.call(w.command, w.key, unpack(w, i, math.min(i + w.step - 1, #w)))
      end
    end
    -- LIMIT 0: all the way down to about HISTORY_EVENTS, where an XTRIM ~ stops after 10,000 (Redis 6.2+)
    for history, events in pairs(streams) do
      if events > 1 then redis.call('XTRIM', history, 'MAXLEN', '~', HISTORY_EVENTS, 'LIMIT', 0) end
    end
    pending, order, streams = {}, {}, {}
  end
  return writes
end

-- Retention of a run whose hash has no `retention` field (created before there was one): 7 days,
-- the default of ORCH_RUN_RETENTION.
local DEFAULT_RETENTION = 7 * 86400

-- A run has ended (succeeded, failed or cancelled): every script that ends one calls this. Its keys
-- are removed `retention` seconds from now (`expiring`, read by orchestrator/store/retention.py), and
-- a run marked `archive` waits in `archiving` for the durable history, scored by when it ended; the
-- janitor removes no run while it is there. The clock is the server's, as the scores are compared
-- with the janitor's clock only at the scale of a retention.
local function run_ended(run, expiring, archiving)
  local fields = redis.call('HMGET', run, 'run_id', 'retention', 'archive')
  local run_id = fields[1]
  if not run_id then return end
  local time = redis.call('TIME')
  local now = tonumber(time[1]) + tonumber(time[2]) / 1000000
  redis.call('ZADD', expiring, now + (tonumber(fields[2] or '') or DEFAULT_RETENTION), run_id)
  if fields[3] == '1' then redis.call('ZADD', archiving, now, run_id) end
end
