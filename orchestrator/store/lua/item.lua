-- Record the end of one item of a for_each step.
--
-- KEYS[1] step       hash: the for_each step's state (status, task_id, items, items_done)
-- KEYS[2] item       hash: the item's state
-- KEYS[3] outputs    hash: item index -> output JSON
-- KEYS[4] leases     zset: unit member -> lease expiry
-- KEYS[5] outbox     zset: the step's fan-out watchdog, renewed here (the fan-out is making progress)
-- ARGV[1] task_id    the execution ending the item
-- ARGV[2] outcome    succeeded | failed
-- ARGV[3] now_iso    finished_at
-- ARGV[4] output     JSON, '' for none
-- ARGV[5] error      JSON, '' for none
-- ARGV[6] index      the item's index
-- ARGV[7] member     the item's member in leases
-- ARGV[8] parent     the step's member
-- ARGV[9] watchdog   the watchdog's new score (epoch s)
--
-- Returns {verdict, step task id}: stale | recorded | all_done | step_failed
--
-- The same call made again by the execution that made it (its first answer was lost with the
-- connection, and the caller retries until it is recorded) answers what the first one decided:
-- the step still waits to be ended by that answer, and nobody else ends it.
local step, item, outputs, leases, outbox = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local task_id, outcome, now_iso, output, error_json = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local index, member, parent_member, watchdog = ARGV[6], ARGV[7], ARGV[8], ARGV[9]

local current = redis.call('HMGET', item, 'status', 'task_id')
if current[1] == outcome and current[2] == task_id then
  local parent = redis.call('HMGET', step, 'status', 'task_id', 'items', 'items_done')
  if parent[1] ~= 'running' then return {'recorded', ''} end
  if outcome == 'failed' then return {'step_failed', parent[2] or ''} end
  if tonumber(parent[4] or '0') >= tonumber(parent[3]) then return {'all_done', parent[2] or ''} end
  return {'recorded', ''}
end
if current[1] ~= 'running' or current[2] ~= task_id then return {'stale', ''} end
redis.call('HSET', item, 'status', outcome, 'finished_at', now_iso)
if error_json ~= '' then redis.call('HSET', item, 'error', error_json) end
redis.call('ZREM', leases, member)
redis.call('ZADD', outbox, 'XX', watchdog, parent_member)
redis.call('HDEL', step, 'republished')

local parent = redis.call('HMGET', step, 'status', 'task_id', 'items')
local step_status, step_task, items = parent[1], parent[2] or '', tonumber(parent[3])
if step_status ~= 'running' then return {'recorded', ''} end
if outcome == 'failed' then
  redis.call('HSETNX', step, 'item_error', error_json)  -- what ends the step, should its ender die
  return {'step_failed', step_task}
end
redis.call('HSET', outputs, index, output)
local done = redis.call('HINCRBY', step, 'items_done', 1)
if done >= items then return {'all_done', step_task} end
return {'recorded', ''}
