-- Record a failed attempt that will be retried.
--
-- KEYS[1] unit       hash: the step's (or item's) state
-- KEYS[2] leases     zset: unit member -> lease expiry
-- ARGV[1] task_id    the execution whose attempt failed
-- ARGV[2] error      JSON
-- ARGV[3] now_iso    finished_at
-- ARGV[4] guard      lease expiry covering the backoff (epoch s): the sweeper republishes after it
-- ARGV[5] member     the unit's member in leases
--
-- Returns 1 when recorded, 0 when this execution no longer owns the unit.
local unit, leases = KEYS[1], KEYS[2]
local task_id, error_json, now_iso, guard, member = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]

local current = redis.call('HMGET', unit, 'status', 'task_id')
if current[1] ~= 'running' or current[2] ~= task_id then return 0 end
redis.call('HSET', unit, 'status', 'retrying', 'error', error_json, 'finished_at', now_iso)
redis.call('ZADD', leases, guard, member)
return 1
