-- Begin a side effect guarded by an idempotency key.
--
-- A key is owned by an execution, not by a unit: the record names the unit's hash and the task
-- id that took it, and the owner counts as alive only while that unit is still running *that*
-- execution under a live lease. So the execution that recovers a unit after its worker died
-- takes the key over at once, while a key held by a live execution of another unit is waited for.
-- (The owner's unit hash is read by the name kept in the record: on Redis Cluster it must share
-- the record's slot.)
--
-- KEYS[1] record     hash: state (running | done), owner (member), owner_key (unit hash), task_id, output
-- KEYS[2] leases     zset: unit member -> lease expiry
-- ARGV[1] member     the member of the unit taking the key
-- ARGV[2] unit_key   that unit's hash
-- ARGV[3] task_id    the execution taking it
-- ARGV[4] now        epoch s
-- ARGV[5] ttl        seconds the record is kept
--
-- Returns {'done', output JSON} (it already ran: reuse the output), {'busy', ''} (a live execution
-- elsewhere is performing it) or {'go', ''} (run it now; this execution owns the key).
local record, leases = KEYS[1], KEYS[2]
local member, unit_key, task_id, now, ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]

local state = redis.call('HMGET', record, 'state', 'owner', 'owner_key', 'task_id', 'output')
local status, owner, owner_key, owner_task, output = state[1], state[2], state[3], state[4], state[5]
if status == 'done' then return {'done', output} end
if status == 'running' and owner_task ~= task_id and owner_key then
  local running = redis.call('HMGET', owner_key, 'status', 'task_id')
  if running[1] == 'running' and running[2] == owner_task and lease_alive(leases, owner, now) then
    return {'busy', ''}
  end
end
redis.call('HSET', record, 'state', 'running', 'owner', member, 'owner_key', unit_key, 'task_id', task_id)
redis.call('EXPIRE', record, ttl)
return {'go', ''}
