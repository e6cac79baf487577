-- Begin a side effect guarded by an idempotency key.
--
-- KEYS[1] record     hash: the key's state (running | done), owner member, task_id, output
-- KEYS[2] leases     zset: unit member -> lease expiry
-- ARGV[1] member     the member of the unit taking the key
-- ARGV[2] task_id    the execution taking it
-- ARGV[3] now        epoch s
-- ARGV[4] ttl        seconds the record is kept
--
-- Returns {'done', output JSON} (it already ran: reuse the output), {'busy', ''} (it is running in
-- a live execution elsewhere) or {'go', ''} (run it now; this execution owns the key).
local record, leases = KEYS[1], KEYS[2]
local member, task_id, now, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]

local state = redis.call('HMGET', record, 'state', 'owner', 'task_id', 'output')
if state[1] == 'done' then return {'done', state[4]} end
if state[1] == 'running' and state[3] ~= task_id and lease_alive(leases, state[2], now) then
  return {'busy', ''}
end
redis.call('HSET', record, 'state', 'running', 'owner', member, 'task_id', task_id)
redis.call('EXPIRE', record, ttl)
return {'go', ''}
