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
-- about the last 100,000 events of a run.
local function record(history, at, event, ...)
  redis.call('XADD', history, 'MAXLEN', '~', 100000, '*', 'at', at, 'event', event, ...)
end
