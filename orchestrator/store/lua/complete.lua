-- Record the end of a step and advance the joins of its dependents, atomically.
--
-- KEYS[1] run            hash: the run's fields (status, remaining, failed)
-- KEYS[2] step           hash: the step's state
-- KEYS[3] output         string: the step's output as JSON
-- KEYS[4] leases         zset: unit member -> lease expiry
-- KEYS[5] outbox         zset: unit member -> when to publish it again
-- KEYS[6] history        stream: the run's events
-- then two keys per dependent (see `dependent` below): its join hash (need -> outcome), its step hash
-- ARGV[1] task_id        the execution ending it, '' for the orchestrator's own transitions (skips, fan-in)
-- ARGV[2] outcome        succeeded | failed | skipped
-- ARGV[3] now_iso        finished_at
-- ARGV[4] output         JSON, '' for none
-- ARGV[5] error          JSON, '' for none
-- ARGV[6] member         the step's member in leases and the outbox
-- ARGV[7] step           the step's name (its key in its dependents' joins)
-- ARGV[8] guard          outbox score for dependents that fire or skip (epoch s)
-- then four arguments per dependent: its trigger rule, its number of needs, its name, its member
--
-- Returns {verdict, run_status, run_epoch, fired..., '|', skipped...}; verdict ok | stale | cancelled
local run, step, output_key, leases, outbox, history = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local task_id, outcome, now_iso, output, error_json = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local member, step_name, guard = ARGV[6], ARGV[7], ARGV[8]
local FIXED_KEYS, FIXED_ARGS, KEYS_PER, ARGS_PER = 6, 8, 2, 4

local function dependent(i)
  local k, a = FIXED_KEYS + KEYS_PER * (i - 1), FIXED_ARGS + ARGS_PER * (i - 1)
  return {join = KEYS[k + 1], step = KEYS[k + 2], rule = ARGV[a + 1], needs = tonumber(ARGV[a + 2]),
    name = ARGV[a + 3], member = ARGV[a + 4]}
end

-- The trigger rules (mirrored by orchestrator/engine/rules.py; tests check the two agree).
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
  -- none_failed
  if failed > 0 then return 'skip' end
  if done == total then return 'fire' end
  return 'wait'
end

local current = redis.call('HMGET', step, 'status', 'task_id')
local status = current[1] or 'pending'
if is_finished(status) then return {'stale', status, '0'} end
if task_id ~= '' and (status ~= 'running' or current[2] ~= task_id) then return {'stale', status, '0'} end

redis.call('HSET', step, 'status', outcome, 'finished_at', now_iso)
if error_json ~= '' then redis.call('HSET', step, 'error', error_json) else redis.call('HDEL', step, 'error') end
if output ~= '' then redis.call('SET', output_key, output) end
redis.call('ZREM', leases, member)
redis.call('ZREM', outbox, member)
if error_json ~= '' then
  record(history, now_iso, outcome, 'step', step_name, 'error', error_json)
else
  record(history, now_iso, outcome, 'step', step_name)
end

local run_status = redis.call('HGET', run, 'status')
if run_status == 'cancelled' then return {'cancelled', run_status, '0'} end
if outcome == 'failed' then redis.call('HINCRBY', run, 'failed', 1) end

local fired, skipped = {}, {}
for i = 1, (#KEYS - FIXED_KEYS) / KEYS_PER do
  local dep = dependent(i)
  -- HSETNX: an arrival counts once, however often this step's end is reported.
  if redis.call('HSETNX', dep.join, step_name, outcome) == 1 then
    local ok, failed, skip = 0, 0, 0
    for _, value in ipairs(redis.call('HVALS', dep.join)) do
      if value == 'succeeded' then ok = ok + 1
      elseif value == 'skipped' then skip = skip + 1
      else failed = failed + 1 end
    end
    local decision = decide(dep.rule, ok, failed, skip, dep.needs)
    if (redis.call('HGET', dep.step, 'status') or 'pending') == 'pending' then
      if decision == 'fire' then
        redis.call('HSET', dep.step, 'status', 'queued')
        -- Until its message is published, the outbox guards the dependent: if this process
        -- dies before publishing, the sweeper publishes it.
        redis.call('ZADD', outbox, guard, dep.member)
        record(history, now_iso, 'queued', 'step', dep.name)
        table.insert(fired, dep.name)
      elseif decision == 'skip' then
        -- Taken now so no later arrival decides again; the caller ends it as skipped (and the
        -- outbox entry lets the sweeper do it if the caller dies first).
        redis.call('HSET', dep.step, 'status', 'skipping')
        redis.call('ZADD', outbox, guard, dep.member)
        table.insert(skipped, dep.name)
      end
    end
  end
end

local remaining = redis.call('HINCRBY', run, 'remaining', -1)
if remaining <= 0 then
  local final = 'succeeded'
  if tonumber(redis.call('HGET', run, 'failed') or '0') > 0 then final = 'failed' end
  redis.call('HSET', run, 'status', final, 'finished_at', now_iso)
  record(history, now_iso, 'finished', 'status', final)
  run_status = final
end
local result = {'ok', run_status, redis.call('HGET', run, 'epoch') or '0'}
for _, name in ipairs(fired) do table.insert(result, name) end
table.insert(result, '|')
for _, name in ipairs(skipped) do table.insert(result, name) end
return result
