-- Record an attempt that will run again: a failed attempt to retry, or one handed back uncounted.
--
-- KEYS[1] unit       hash: the step's (or item's) state
-- KEYS[2] leases     zset: unit member -> lease expiry
-- KEYS[3] history    stream: the run's events
-- ARGV[1] task_id    the execution whose attempt ends
-- ARGV[2] error      JSON: why it will run again
-- ARGV[3] now_iso    finished_at
-- ARGV[4] guard      lease expiry covering the delay (epoch s): the sweeper republishes after it
-- ARGV[5] member     the unit's member in leases
-- ARGV[6] counts     '1': the attempt counts (a retry, attempt + 1 is next); '0': it does not
--                    (a deferral, the same attempt is published again)
-- ARGV[7] step       the step's name, '' for an item (items have no history events)
--
-- Returns 1 when recorded, 0 when this execution no longer owns the unit.
local unit, leases, history = KEYS[1], KEYS[2], KEYS[3]
local task_id, error_json, now_iso, guard, member = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local counts, step_name = ARGV[6] == '1', ARGV[7]

local current = redis.call('HMGET', unit, 'status', 'task_id', 'attempts')
if current[1] ~= 'running' or current[2] ~= task_id then return 0 end
local attempt = current[3]
redis.call('HSET', unit, 'status', 'retrying', 'error', error_json, 'finished_at', now_iso)
if not counts then redis.call('HINCRBY', unit, 'attempts', -1) end
redis.call('ZADD', leases, guard, member)
if step_name ~= '' then
  record(history, now_iso, counts and 'retrying' or 'deferred', 'step', step_name, 'attempt', attempt,
    'error', error_json)
end
return 1
