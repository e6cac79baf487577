-- Begin a side effect guarded by an idempotency key.
-- KEYS[1] idempotency hash, KEYS[2] leases zset
-- ARGV[1] owner lease member, ARGV[2] owner task id, ARGV[3] now (epoch s), ARGV[4] ttl (s)
-- Returns {'done', output JSON} (it already ran: reuse the output), {'busy'} (it is running in a
-- live execution elsewhere) or {'go'} (run it now; this execution owns the key).
local state = redis.call('HMGET', KEYS[1], 'state', 'owner', 'task_id', 'output')
if state[1] == 'done' then return {'done', state[4]} end
if state[1] == 'running' and state[3] ~= ARGV[2] then
  local expiry = redis.call('ZSCORE', KEYS[2], state[2])
  if expiry and tonumber(expiry) > tonumber(ARGV[3]) then return {'busy', ''} end
end
redis.call('HSET', KEYS[1], 'state', 'running', 'owner', ARGV[1], 'task_id', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return {'go', ''}
