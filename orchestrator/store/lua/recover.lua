-- Decide what to do with a unit whose lease or outbox entry expired.
-- KEYS[1] run hash, KEYS[2] unit hash, KEYS[3] leases zset, KEYS[4] outbox zset
-- ARGV[1] member, ARGV[2] now (epoch s), ARGV[3] new guard expiry (epoch s), ARGV[4] max recoveries,
-- ARGV[5] '1' for a for_each item (a missing item hash means queued), ARGV[6] first wait before a
-- queued unit is published again (s), ARGV[7] longest such wait (s)
-- Returns {verdict, attempt, plan id, task id}: none | requeue | poison | skip
local run = redis.call('HMGET', KEYS[1], 'status', 'plan_id')
local function forget()
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('ZREM', KEYS[4], ARGV[1])
  return {'none', '0', '', ''}
end
if not run[1] or run[1] == 'cancelled' or run[1] == 'succeeded' or run[1] == 'failed' then return forget() end
local state = redis.call('HMGET', KEYS[2], 'status', 'attempts', 'task_id')
local status = state[1]
if not status then
  if ARGV[5] == '1' then status = 'queued' else status = 'pending' end
end
local attempts = tonumber(state[2] or '0')
if status == 'skipping' then
  redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1])
  return {'skip', '0', run[2], ''}
end
if status ~= 'running' and status ~= 'queued' and status ~= 'retrying' then return forget() end
if status == 'running' then
  local expiry = redis.call('ZSCORE', KEYS[3], ARGV[1])
  if expiry and tonumber(expiry) > tonumber(ARGV[2]) then return {'none', '0', '', ''} end
  local recoveries = redis.call('HINCRBY', KEYS[2], 'recoveries', 1)
  if recoveries > tonumber(ARGV[4]) then
    return {'poison', tostring(attempts), run[2], state[3] or ''}
  end
  -- Orphaned: its execution died. Back to queued for the same attempt; a late answer from the
  -- old execution no longer matches the unit's task id and is dropped.
  redis.call('HSET', KEYS[2], 'status', 'queued', 'attempts', attempts - 1)
  redis.call('HDEL', KEYS[2], 'task_id')
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1])
  return {'requeue', tostring(attempts), run[2], ''}
end
-- Queued or retrying: its message may be lost, or only waiting in a long queue. Publish it again,
-- and double the wait before the next time, so a backlog is not flooded with copies.
local republished = redis.call('HINCRBY', KEYS[2], 'republished', 1)
local wait = math.min(tonumber(ARGV[6]) * 2 ^ (republished - 1), tonumber(ARGV[7]))
local guard = tonumber(ARGV[2]) + wait
if status == 'queued' then
  redis.call('ZADD', KEYS[4], guard, ARGV[1])
else
  redis.call('ZADD', KEYS[3], guard, ARGV[1])
end
return {'requeue', tostring(attempts + 1), run[2], ''}
