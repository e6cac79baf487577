-- Record the end of one item of a for_each step.
-- KEYS[1] step hash, KEYS[2] item hash, KEYS[3] item outputs hash, KEYS[4] leases zset
-- ARGV[1] task id, ARGV[2] status (succeeded | failed), ARGV[3] finished_at, ARGV[4] output JSON,
-- ARGV[5] error JSON, ARGV[6] item index, ARGV[7] lease member
-- Returns {verdict, step task id}: stale | recorded | all_done | step_failed
local current = redis.call('HMGET', KEYS[2], 'status', 'task_id')
if current[1] ~= 'running' or current[2] ~= ARGV[1] then return {'stale', ''} end
redis.call('HSET', KEYS[2], 'status', ARGV[2], 'finished_at', ARGV[3])
if ARGV[5] ~= '' then redis.call('HSET', KEYS[2], 'error', ARGV[5]) end
redis.call('ZREM', KEYS[4], ARGV[7])
local step = redis.call('HMGET', KEYS[1], 'status', 'task_id', 'items')
if step[1] ~= 'running' then return {'recorded', ''} end
if ARGV[2] == 'failed' then return {'step_failed', step[2] or ''} end
redis.call('HSET', KEYS[3], ARGV[6], ARGV[4])
local done = redis.call('HINCRBY', KEYS[1], 'items_done', 1)
if done >= tonumber(step[3]) then return {'all_done', step[2] or ''} end
return {'recorded', ''}
