-- Take a finished run whose retention is over for removal: the first, atomic step of removing its
-- keys (orchestrator/store/retention.py deletes the rest in batches, then forgets the run).
--
-- KEYS[1] run        hash: the run's fields
-- KEYS[2] removal    hash: the same fields while its keys are being removed (the run hash renamed)
-- KEYS[3] expiring   zset: finished run id -> when retention removes it (epoch s)
-- KEYS[4] archiving  zset: finished run id -> when it ended, not yet written to the durable history
-- KEYS[5] runs       zset: every run id by creation time
-- ARGV[1] run_id
-- ARGV[2] now        epoch s
-- ARGV[3] postpone   epoch s: when to look again at a run still waiting for the history
--
-- A run still in `archiving` is postponed, never removed. A taken run's hash is renamed to
-- `removal`: from then on it reads as gone everywhere (status, a retry, a late claim find no run)
-- and its keys are the janitor's alone. Taking a run again (the janitor stopped midway) answers
-- the same, from `removal`, so a removal can always be finished.
--
-- Returns {verdict, workflow, plan_id}: taken | postponed | not_due | unfinished | gone
local run, removal, expiring, archiving, runs = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local run_id, now, postpone = ARGV[1], tonumber(ARGV[2]), ARGV[3]

local due = redis.call('ZSCORE', expiring, run_id)
if not due or tonumber(due) > now then return {'not_due', '', ''} end
if redis.call('ZSCORE', archiving, run_id) then
  redis.call('ZADD', expiring, postpone, run_id)
  return {'postponed', '', ''}
end
local status = redis.call('HGET', run, 'status')
if status then
  if status ~= 'succeeded' and status ~= 'failed' and status ~= 'cancelled' then
    redis.call('ZREM', expiring, run_id)  -- running again; it is queued again when it ends
    return {'unfinished', '', ''}
  end
  redis.call('RENAME', run, removal)
end
redis.call('ZREM', runs, run_id)
local fields = redis.call('HMGET', removal, 'workflow', 'plan_id')
if not fields[1] then
  redis.call('ZREM', expiring, run_id)  -- its keys went some other way: nothing is left to find
  return {'gone', '', ''}
end
return {'taken', fields[1], fields[2] or ''}
