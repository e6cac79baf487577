-- Claim one unit of work (a step, or one item of a for_each step) for one execution.
--
-- KEYS[1] run             hash: the run's fields
-- KEYS[2] unit            hash: the unit's state (status, attempts, task_id, ...)
-- KEYS[3] leases          zset: unit member -> lease expiry (epoch s)
-- ARGV[1] task_id         the delivery that claims it
-- ARGV[2] attempt         the attempt its message is for (1-based)
-- ARGV[3] worker          the worker's name
-- ARGV[4] now_iso         started_at
-- ARGV[5] now             epoch s
-- ARGV[6] lease_expiry    epoch s
-- ARGV[7] member          the unit's member in leases ('run|step|item')
-- ARGV[8] max_recoveries  deaths of its executions before it is poison
-- ARGV[9] is_item         '1' for a for_each item
--
-- Returns {verdict, detail}: ok | cancelled | missing | done | busy | stale | poison
local run, unit, leases = KEYS[1], KEYS[2], KEYS[3]
local task_id, attempt, worker, now_iso = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local now, lease_expiry, member = tonumber(ARGV[5]), ARGV[6], ARGV[7]
local max_recoveries, is_item = tonumber(ARGV[8]), ARGV[9]

local run_status = redis.call('HGET', run, 'status')
if not run_status then return {'missing', ''} end
if run_status == 'cancelled' then return {'cancelled', ''} end

local state = redis.call('HMGET', unit, 'status', 'attempts')
local status = unit_status(state[1], is_item)
local attempts = tonumber(state[2] or '0')
if is_finished(status) then return {'done', status} end
if status == 'pending' or status == 'skipping' then return {'stale', status} end

if status == 'running' then
  if lease_alive(leases, member, now) then return {'busy', ''} end
  if attempt ~= attempts then return {'stale', tostring(attempts)} end
  -- The previous execution of this attempt died: take it over.
  local recoveries, poison = count_recovery(unit, max_recoveries)
  if poison then
    redis.call('HSET', unit, 'task_id', task_id, 'worker', worker)
    redis.call('ZADD', leases, lease_expiry, member)
    return {'poison', tostring(recoveries)}
  end
elseif attempt ~= attempts + 1 then
  return {'stale', tostring(attempts)}
end

redis.call('HSET', unit, 'status', 'running', 'attempts', attempt, 'task_id', task_id,
  'worker', worker, 'started_at', now_iso)
redis.call('HDEL', unit, 'finished_at', 'republished')
redis.call('ZADD', leases, lease_expiry, member)
if run_status == 'pending' then
  redis.call('HSET', run, 'status', 'running', 'started_at', now_iso)
end
return {'ok', ''}
