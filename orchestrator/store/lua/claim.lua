-- Claim one unit of work (a step or a for_each item) for one execution.
-- KEYS[1] run hash, KEYS[2] unit hash, KEYS[3] leases zset
-- ARGV[1] task id, ARGV[2] attempt, ARGV[3] worker, ARGV[4] now (ISO), ARGV[5] now (epoch s),
-- ARGV[6] lease expiry (epoch s), ARGV[7] lease member, ARGV[8] max recoveries,
-- ARGV[9] '1' for a for_each item (items have no hash until claimed: missing means queued)
-- Returns {verdict, detail}: ok | cancelled | missing | done | busy | stale | poison
local run_status = redis.call('HGET', KEYS[1], 'status')
if not run_status then return {'missing', ''} end
if run_status == 'cancelled' then return {'cancelled', ''} end
local state = redis.call('HMGET', KEYS[2], 'status', 'attempts', 'recoveries')
local status = state[1]
if not status then
  if ARGV[9] == '1' then status = 'queued' else status = 'pending' end
end
local attempts = tonumber(state[2] or '0')
local attempt = tonumber(ARGV[2])
if status == 'succeeded' or status == 'failed' or status == 'skipped' or status == 'cancelled' then
  return {'done', status}
end
if status == 'pending' or status == 'skipping' then return {'stale', status} end
if status == 'running' then
  local expiry = redis.call('ZSCORE', KEYS[3], ARGV[7])
  if expiry and tonumber(expiry) > tonumber(ARGV[5]) then return {'busy', ''} end
  if attempt ~= attempts then return {'stale', tostring(attempts)} end
  -- The previous execution of this attempt died (its lease expired): take it over.
  local recoveries = redis.call('HINCRBY', KEYS[2], 'recoveries', 1)
  if recoveries > tonumber(ARGV[8]) then
    -- It killed its worker too often: the caller fails it instead of running it again.
    redis.call('HSET', KEYS[2], 'task_id', ARGV[1], 'worker', ARGV[3])
    redis.call('ZADD', KEYS[3], ARGV[6], ARGV[7])
    return {'poison', tostring(recoveries)}
  end
elseif attempt ~= attempts + 1 then
  return {'stale', tostring(attempts)}
end
redis.call('HSET', KEYS[2], 'status', 'running', 'attempts', attempt, 'task_id', ARGV[1],
  'worker', ARGV[3], 'started_at', ARGV[4])
redis.call('HDEL', KEYS[2], 'finished_at', 'republished')
redis.call('ZADD', KEYS[3], ARGV[6], ARGV[7])
if run_status == 'pending' then
  redis.call('HSET', KEYS[1], 'status', 'running', 'started_at', ARGV[4])
end
return {'ok', ''}
