-- Begin a side effect guarded by an idempotency key.
--
-- A key is owned by an execution, not by a unit: the record names the unit's hash and the task
-- id that took it, and the owner counts as alive only while that unit is still running *that*
-- execution under a live lease. So the execution that recovers a unit after its worker died
-- takes the key over at once, while a key held by a live execution of another unit is waited for.
--
-- The owner's unit and lease are in its run's slot, which on Redis Cluster is not the record's:
-- this script touches the record only. When another execution holds the key it answers 'check'
-- with the owner; the caller reads whether that owner is alive and, if it is not, calls again
-- naming it in ARGV[6]: the key is taken over only if that same execution still holds it.
--
-- KEYS[1] record     hash: state (running | done), owner (member), owner_key (unit hash), task_id, output
-- ARGV[1] member     the member of the unit taking the key
-- ARGV[2] unit_key   that unit's hash
-- ARGV[3] task_id    the execution taking it
-- ARGV[4] ttl        seconds the record is kept
-- ARGV[5] dead_task  an owner execution the caller found dead ('' for none)
--
-- Returns {'done', output JSON} (it already ran: reuse the output), {'check', owner member,
-- owner unit hash, owner task id} (another execution holds it: is it alive?) or {'go'} (run it
-- now; this execution owns the key).
local record = KEYS[1]
local member, unit_key, task_id, ttl, dead_task = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]

local state = redis.call('HMGET', record, 'state', 'owner', 'owner_key', 'task_id', 'output')
local status, owner, owner_key, output = state[1], state[2], state[3], state[5]
local owner_task = state[4] or ''
if status == 'done' then return {'done', output} end
if status == 'running' and owner_key and owner_task ~= task_id and owner_task ~= dead_task then
  return {'check', owner or '', owner_key, owner_task}
end
redis.call('HSET', record, 'state', 'running', 'owner', member, 'owner_key', unit_key, 'task_id', task_id)
redis.call('EXPIRE', record, ttl)
return {'go'}
