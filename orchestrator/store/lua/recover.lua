-- Decide what to do with a unit whose lease or outbox entry expired.
--
-- KEYS[1] run              hash: the run's fields
-- KEYS[2] unit             hash: the unit's state
-- KEYS[3] leases           zset: unit member -> lease expiry
-- KEYS[4] outbox           zset: unit member -> when to publish it again
-- KEYS[5] history          stream: the run's events
-- ARGV[1] member           the unit's member
-- ARGV[2] now              epoch s
-- ARGV[3] guard            new outbox score of a requeued running unit (epoch s)
-- ARGV[4] max_recoveries   deaths of its executions before it is poison
-- ARGV[5] is_item          '1' for a for_each item
-- ARGV[6] first_wait       seconds before a queued unit is published again, the first time
-- ARGV[7] longest_wait     the longest such wait
-- ARGV[8] now_iso          for the history
-- ARGV[9] step             the step's name ('' for an item: items have no history events)
--
-- A for_each step that has fanned out has no lease, only a watchdog in the outbox, renewed by each
-- item claimed or ended. When it expires the fan-out made no progress for a while: its items are
-- published again ('refan'; those that ended or run drop the copies), waiting twice as long
-- before the next time. If every item has ended (or one failed) the step is only waiting for the
-- execution that ended the last item to end it, and that one died or lost its store: the step is
-- ended now ('fan_in', or 'fan_failed' with the item's error on the step's hash).
--
-- Returns {verdict, attempt, plan_id, task_id, recoveries, epoch, items}:
-- none | requeue | poison | skip | refan | fan_in | fan_failed
local run, unit, leases, outbox, history = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local member, now, guard = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local max_recoveries, is_item = tonumber(ARGV[4]), ARGV[5]
local first_wait, longest_wait = tonumber(ARGV[6]), tonumber(ARGV[7])
local now_iso, step_name = ARGV[8], ARGV[9]

local function forget()
  redis.call('ZREM', leases, member)
  redis.call('ZREM', outbox, member)
  return {'none', '0', '', '', '0', '0', '0'}
end

local fields = redis.call('HMGET', run, 'status', 'plan_id', 'epoch')
local run_status, plan_id, epoch = fields[1], fields[2], fields[3] or '0'
if not run_status or run_status == 'cancelled' or run_status == 'succeeded' or run_status == 'failed' then
  return forget()
end
local state = redis.call('HMGET', unit, 'status', 'attempts', 'task_id', 'items', 'worker')
local status = unit_status(state[1], is_item)
local attempts = tonumber(state[2] or '0')

if status == 'skipping' then
  redis.call('ZADD', outbox, guard, member)
  return {'skip', '0', plan_id, '', '0', epoch, '0'}
end
if status ~= 'running' and status ~= 'queued' and status ~= 'retrying' then return forget() end

-- Whether the unit's outbox entry is still in the future (another sweep, or progress, renewed it).
local function guarded()
  local at = redis.call('ZSCORE', outbox, member)
  return at and tonumber(at) > now
end

local function republish_wait()
  local republished = redis.call('HINCRBY', unit, 'republished', 1)
  return math.min(first_wait * 2 ^ (republished - 1), longest_wait)
end

if status == 'running' then
  if lease_alive(leases, member, now) then return {'none', '0', '', '', '0', '0', '0'} end
  if state[4] and is_item ~= '1' then
    if guarded() then return {'none', '0', '', '', '0', '0', '0'} end
    local ended = redis.call('HMGET', unit, 'items_done', 'item_error')
    if ended[2] or tonumber(ended[1] or '0') >= tonumber(state[4]) then
      redis.call('ZADD', outbox, guard, member)  -- again later, should this ending fail too
      local verdict = ended[2] and 'fan_failed' or 'fan_in'
      return {verdict, tostring(attempts), plan_id, state[3] or '', '0', epoch, state[4]}
    end
    redis.call('ZREM', leases, member)
    redis.call('ZADD', outbox, now + republish_wait(), member)
    return {'refan', tostring(attempts), plan_id, '', '0', epoch, state[4]}
  end
  local recoveries, poison = count_recovery(unit, max_recoveries)
  if poison then return {'poison', tostring(attempts), plan_id, state[3] or '', tostring(recoveries), epoch, '0'} end
  -- Orphaned: its execution died. Back to queued for the same attempt; a late answer from the
  -- old execution no longer matches the unit's task id and is dropped.
  redis.call('HSET', unit, 'status', 'queued', 'attempts', attempts - 1)
  redis.call('HDEL', unit, 'task_id')
  redis.call('ZREM', leases, member)
  redis.call('ZADD', outbox, guard, member)
  if step_name ~= '' then
    record(history, now_iso, 'recovered', 'step', step_name, 'attempt', attempts, 'worker', state[5] or '')
  end
  return {'requeue', tostring(attempts), plan_id, '', tostring(recoveries), epoch, '0'}
end

-- Queued or retrying: its message may be lost, or only waiting in a long queue. Publish it again,
-- and double the wait before the next time, so a backlog is not flooded with copies.
if guarded() or (status == 'retrying' and lease_alive(leases, member, now)) then
  return {'none', '0', '', '', '0', '0', '0'}
end
local wait = republish_wait()
if status == 'queued' then
  redis.call('ZADD', outbox, now + wait, member)
else
  redis.call('ZADD', leases, now + wait, member)
end
return {'requeue', tostring(attempts + 1), plan_id, '', '0', epoch, '0'}
