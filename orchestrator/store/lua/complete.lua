-- Record the end of a step and advance the joins of its dependents, atomically.
--
-- KEYS[1] run            hash: the run's fields (status, remaining, failed)
-- KEYS[2] step           hash: the step's state
-- KEYS[3] output         string: the step's output as JSON
-- KEYS[4] leases         zset: unit member -> lease expiry
-- KEYS[5] outbox         zset: unit member -> when to publish it again
-- KEYS[6] history        stream: the run's events
-- KEYS[7] expiring       zset: finished run id -> when retention removes it (see run_ended, lib.lua)
-- KEYS[8] archiving      zset: finished run id -> when it ended, for the durable history
-- then three keys per dependent (see `dependent` below): its join hash (need -> outcome), its step
-- hash, and the broker's list its message goes to (used only when ARGV[9] and its message are set;
-- its step hash again when it has no message)
-- ARGV[1] task_id        the execution ending it, '' for the orchestrator's own transitions (skips, fan-in)
-- ARGV[2] outcome        succeeded | failed | skipped
-- ARGV[3] now_iso        finished_at
-- ARGV[4] output         JSON, '' for none
-- ARGV[5] error          JSON, '' for none
-- ARGV[6] member         the step's member in leases and the outbox
-- ARGV[7] step           the step's name (its key in its dependents' joins)
-- ARGV[8] guard          outbox score for dependents that fire or skip (epoch s)
-- ARGV[9] push_epoch     the run epoch the dependents' messages were built for, '' when none were
-- then five arguments per dependent: its trigger rule, its number of needs, its name, its member,
-- and its message as the broker stores it ('' for none)
--
-- A fired dependent with a message is pushed onto its queue here, in the same atomic call that
-- fires it (the broker is this Redis): no publish is left for the caller to do. Without one
-- (another broker, or a run retried since the messages were built) the caller publishes it.
-- Either way its outbox entry guards it until a delivery claims it (the claim removes it).
--
-- Returns {verdict, run_status, run_epoch, fired..., '|', skipped..., '|', pushed...};
-- verdict ok | stale | cancelled
local run, step, output_key, leases, outbox, history = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local expiring, archiving = KEYS[7], KEYS[8]
local task_id, outcome, now_iso, output, error_json = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local member, step_name, guard, push_epoch = ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local FIXED_KEYS, FIXED_ARGS, KEYS_PER, ARGS_PER = 8, 9, 3, 5

local function dependent(i)
  local k, a = FIXED_KEYS + KEYS_PER * (i - 1), FIXED_ARGS + ARGS_PER * (i - 1)
  return {join = KEYS[k + 1], step = KEYS[k + 2], queue = KEYS[k + 3], rule = ARGV[a + 1],
    needs = tonumber(ARGV[a + 2]), name = ARGV[a + 3], member = ARGV[a + 4], message = ARGV[a + 5]}
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
local run_epoch = redis.call('HGET', run, 'epoch') or '0'
local pushing = push_epoch ~= '' and push_epoch == run_epoch

local fired, skipped, pushed = {}, {}, {}
local writes = batched()  -- the fired dependents' messages (a fan-out's in a few commands) and events
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
        writes.record(history, now_iso, 'queued', 'step', dep.name)
        -- Until a delivery claims it, the outbox guards the dependent: if this process dies
        -- before publishing it, or a worker dies holding its message unclaimed, the sweeper
        -- publishes it again.
        redis.call('ZADD', outbox, guard, dep.member)
        if pushing and dep.message ~= '' then
          writes.lpush(dep.queue, dep.message)
          table.insert(pushed, dep.name)
        end
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
writes.send()

local remaining = redis.call('HINCRBY', run, 'remaining', -1)
if remaining <= 0 then
  local final = 'succeeded'
  if tonumber(redis.call('HGET', run, 'failed') or '0') > 0 then final = 'failed' end
  redis.call('HSET', run, 'status', final, 'finished_at', now_iso)
  record(history, now_iso, 'finished', 'status', final)
  run_ended(run, expiring, archiving)
  run_status = final
end
local result = {'ok', run_status, run_epoch}
for _, name in ipairs(fired) do table.insert(result, name) end
table.insert(result, '|')
for _, name in ipairs(skipped) do table.insert(result, name) end
table.insert(result, '|')
for _, name in ipairs(pushed) do table.insert(result, name) end
return result
