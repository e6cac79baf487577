-- Cancel a run: it and every unfinished step end 'cancelled'; nothing new is dispatched.
-- KEYS[1] run hash, KEYS[2..] step hashes
-- ARGV[1] finished_at (ISO)
-- Returns {verdict, task ids of queued or running steps...}; verdict ok | finished | missing
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'missing'} end
if status == 'succeeded' or status == 'failed' or status == 'cancelled' then return {'finished', status} end
redis.call('HSET', KEYS[1], 'status', 'cancelled', 'finished_at', ARGV[1])
local revoked = {'ok'}
for i = 2, #KEYS do
  local step = redis.call('HMGET', KEYS[i], 'status', 'task_id')
  local s = step[1] or 'pending'
  if s ~= 'succeeded' and s ~= 'failed' and s ~= 'skipped' and s ~= 'cancelled' then
    redis.call('HSET', KEYS[i], 'status', 'cancelled', 'finished_at', ARGV[1])
    if step[2] then table.insert(revoked, step[2]) end
  end
end
return revoked
