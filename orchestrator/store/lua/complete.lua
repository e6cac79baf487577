-- Record the end of a step and advance the joins of its dependents, atomically.
-- KEYS[1] run hash, KEYS[2] step hash, KEYS[3] output key, KEYS[4] leases zset, KEYS[5] outbox zset,
-- then per dependent i: KEYS[5 + 2i - 1] its join hash, KEYS[5 + 2i] its step hash
-- ARGV[1] task id ('' for the orchestrator's own transitions: skips, fan-in)
-- ARGV[2] status (succeeded | failed | skipped), ARGV[3] finished_at (ISO), ARGV[4] output JSON
-- ('' for none), ARGV[5] error JSON ('' for none), ARGV[6] lease member, ARGV[7] step name,
-- ARGV[8] outbox score for dependents that fire (epoch s), ARGV[9] run id,
-- then per dependent i: ARGV[9 + 3i - 2] trigger rule, ARGV[9 + 3i - 1] its needs count,
-- ARGV[9 + 3i] its name
-- Returns {verdict, run_status, fired..., '|', skipped...}; verdict ok | stale | cancelled
local function decide(rule, ok, failed, skipped, total)
  local done = ok + failed + skipped
  if rule == 'all_success' then
    if failed > 0 or skipped > 0 then return 'skip' end
    if ok == total then return 'fire' end
    return 'wait'
  elseif rule == 'all_done' then
    if done == total then return 'fire' end
    return 'wait'
  elseif rule == 'one_failed' then
    if failed > 0 then return 'fire' end
    if done == total then return 'skip' end
    return 'wait'
  end
  if failed > 0 then return 'skip' end
  if done == total then return 'fire' end
  return 'wait'
end

local current = redis.call('HMGET', KEYS[2], 'status', 'task_id')
local status = current[1] or 'pending'
if status == 'succeeded' or status == 'failed' or status == 'skipped' or status == 'cancelled' then
  return {'stale', status}
end
if ARGV[1] ~= '' and (status ~= 'running' or current[2] ~= ARGV[1]) then
  return {'stale', status}
end
redis.call('HSET', KEYS[2], 'status', ARGV[2], 'finished_at', ARGV[3])
if ARGV[5] ~= '' then redis.call('HSET', KEYS[2], 'error', ARGV[5]) else redis.call('HDEL', KEYS[2], 'error') end
if ARGV[4] ~= '' then redis.call('SET', KEYS[3], ARGV[4]) end
redis.call('ZREM', KEYS[4], ARGV[6])
redis.call('ZREM', KEYS[5], ARGV[6])

local run_status = redis.call('HGET', KEYS[1], 'status')
if run_status == 'cancelled' then return {'cancelled', run_status} end
if ARGV[2] == 'failed' then redis.call('HINCRBY', KEYS[1], 'failed', 1) end

local fired, skipped = {}, {}
local outcome = ARGV[2]
local count = (#KEYS - 5) / 2
for i = 1, count do
  local join_key, dep_key = KEYS[5 + 2 * i - 1], KEYS[5 + 2 * i]
  local rule, total, name = ARGV[9 + 3 * i - 2], tonumber(ARGV[9 + 3 * i - 1]), ARGV[9 + 3 * i]
  if redis.call('HSETNX', join_key, ARGV[7], outcome) == 1 then
    local ok, failed, skip = 0, 0, 0
    for _, value in ipairs(redis.call('HVALS', join_key)) do
      if value == 'succeeded' then ok = ok + 1
      elseif value == 'skipped' then skip = skip + 1
      else failed = failed + 1 end
    end
    local decision = decide(rule, ok, failed, skip, total)
    local dep_status = redis.call('HGET', dep_key, 'status') or 'pending'
    if dep_status == 'pending' then
      if decision == 'fire' then
        redis.call('HSET', dep_key, 'status', 'queued')
        -- Until its message is published, the outbox guards the dependent: if this process
        -- dies before publishing, the sweeper publishes it.
        redis.call('ZADD', KEYS[5], ARGV[8], ARGV[9] .. '|' .. name .. '|')
        table.insert(fired, name)
      elseif decision == 'skip' then
        -- Taken now so no later arrival decides again; the caller ends it as skipped (and the
        -- outbox entry lets the sweeper do it if the caller dies first).
        redis.call('HSET', dep_key, 'status', 'skipping')
        redis.call('ZADD', KEYS[5], ARGV[8], ARGV[9] .. '|' .. name .. '|')
        table.insert(skipped, name)
      end
    end
  end
end

local remaining = redis.call('HINCRBY', KEYS[1], 'remaining', -1)
if remaining <= 0 then
  local final = 'succeeded'
  if tonumber(redis.call('HGET', KEYS[1], 'failed') or '0') > 0 then final = 'failed' end
  redis.call('HSET', KEYS[1], 'status', final, 'finished_at', ARGV[3])
  run_status = final
end
local result = {'ok', run_status}
for _, name in ipairs(fired) do table.insert(result, name) end
table.insert(result, '|')
for _, name in ipairs(skipped) do table.insert(result, name) end
return result
