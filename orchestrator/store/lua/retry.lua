-- Record a failed attempt that will be retried.
-- KEYS[1] unit hash (step or item), KEYS[2] leases zset
-- ARGV[1] task id, ARGV[2] error JSON, ARGV[3] finished_at (ISO), ARGV[4] lease expiry covering
-- the delay (epoch s), ARGV[5] lease member
-- Returns 1 when recorded, 0 when this execution no longer owns the unit.
local current = redis.call('HMGET', KEYS[1], 'status', 'task_id')
if current[1] ~= 'running' or current[2] ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'status', 'retrying', 'error', ARGV[2], 'finished_at', ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
return 1
