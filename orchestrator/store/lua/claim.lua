-- Claim one unit of work (a step, or one item of a for_each step) for one execution.
--
-- The message is checked against the store before anything runs: it must name the run's plan and
-- the run's current epoch (a message from before a retry is stale), and an item must belong to a
-- for_each step that is fanning out, at an index it fanned out. A claim ends the unit's outbox
-- guard (its message was published and has now been taken) and, for an item, renews its step's
-- fan-out watchdog: the fan-out is making progress.
--
-- KEYS[1] run             hash: the run's fields (status, plan_id, epoch)
-- KEYS[2] unit            hash: the unit's state (status, attempts, task_id, ...)
-- KEYS[3] leases          zset: unit member -> lease expiry (epoch s)
-- KEYS[4] parent          hash: for an item, its for_each step's state (status, items); else the unit
-- KEYS[5] outbox          zset: unit member -> when to publish it again
-- KEYS[6] history         stream: the run's events
-- ARGV[1] task_id         the delivery that claims it
-- ARGV[2] attempt         the attempt its message is for (1-based)
-- ARGV[3] worker          the worker's name
-- ARGV[4] now_iso         started_at
-- ARGV[5] now             epoch s
-- ARGV[6] lease_expiry    epoch s
-- ARGV[7] member          the unit's member in leases ('run|step|item')
-- ARGV[8] max_recoveries  deaths of its executions before it is poison
-- ARGV[9] item            the item's index, '' for a step
-- ARGV[10] plan_id        the plan the message names
-- ARGV[11] epoch          the run epoch the message was sent in
-- ARGV[12] parent_member  for an item, its step's member (its fan-out watchdog in the outbox)
-- ARGV[13] watchdog       new score of that watchdog (epoch s)
-- ARGV[14] step           the step's name (its history event; items have none)
-- ARGV[15] with_params    '1': the claim's reply carries the run's params too (the step names them)
--
-- Returns {verdict, detail}: ok | cancelled | missing | done | busy | stale | poison | invalid;
-- an ok claim adds the run fields the step's context needs: workflow, created_at, logical_date
-- and, with with_params, params (so a step that refers to nothing upstream reads in one call).
local run, unit, leases, parent, outbox, history = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local task_id, attempt, worker, now_iso = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local now, lease_expiry, member = tonumber(ARGV[5]), ARGV[6], ARGV[7]
local max_recoveries, item, plan_id, epoch = tonumber(ARGV[8]), ARGV[9], ARGV[10], tonumber(ARGV[11])
local parent_member, watchdog, step_name, with_params = ARGV[12], ARGV[13], ARGV[14], ARGV[15] == '1'
local is_item = item ~= ''

local fields = redis.call('HMGET', run, 'status', 'plan_id', 'epoch', 'started_at', 'workflow', 'created_at',
  'logical_date')
local run_status, run_plan, run_epoch, run_started = fields[1], fields[2], tonumber(fields[3] or '0'), fields[4]
if not run_status then return {'missing', ''} end
if run_plan ~= plan_id then return {'invalid', 'the message names plan ' .. plan_id .. ', not the run\'s'} end
if run_status == 'cancelled' then return {'cancelled', ''} end
if epoch ~= run_epoch then return {'stale', 'sent before the run was retried'} end
if is_item then
  local step = redis.call('HMGET', parent, 'status', 'items')
  if step[2] and tonumber(item) >= tonumber(step[2]) then
    return {'invalid', 'item ' .. item .. ' of a step with ' .. step[2] .. ' items'}
  end
  if step[1] ~= 'running' or not step[2] then return {'stale', 'its step is not fanning out'} end
end

local state = redis.call('HMGET', unit, 'status', 'attempts')
local status = unit_status(state[1], is_item and '1' or '0')
local attempts = tonumber(state[2] or '0')
if is_finished(status) then return {'done', status} end
if status == 'pending' or status == 'skipping' then return {'stale', status} end

if status == 'running' then
  if lease_alive(leases, member, now) then return {'busy', ''} end
  if attempt ~= attempts then return {'stale', tostring(attempts)} end
  -- The previous execution of this attempt died: take it over.
  local recoveries, poison = count_recovery(unit, max_recoveries)
  if poison then
    redis.call('HSET', unit, 'task_id', task_id, 'worker', worker)
    redis.call('ZADD', leases, lease_expiry, member)
    return {'poison', tostring(recoveries)}
  end
elseif attempt ~= attempts + 1 then
  return {'stale', tostring(attempts)}
end

redis.call('HSET', unit, 'status', 'running', 'attempts', attempt, 'task_id', task_id,
  'worker', worker, 'started_at', now_iso)
redis.call('HDEL', unit, 'finished_at', 'republished')
redis.call('ZADD', leases, lease_expiry, member)
redis.call('ZREM', outbox, member)
if is_item then
  redis.call('ZADD', outbox, 'XX', watchdog, parent_member)
else
  record(history, now_iso, 'started', 'step', step_name, 'attempt', attempt, 'worker', worker, 'task_id', task_id)
end
if run_status == 'pending' then redis.call('HSET', run, 'status', 'running') end
-- The earliest claim's clock, whichever claim runs first: workers' timestamps race each other.
if not run_started or now_iso < run_started then redis.call('HSET', run, 'started_at', now_iso) end
local params = with_params and redis.call('HGET', run, 'params') or false
return {'ok', '', fields[5], fields[6], fields[7], params}
