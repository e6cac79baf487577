-- Cancel a run: it and every unfinished step end 'cancelled'; nothing new is dispatched.
--
-- KEYS[1] run        hash: the run's fields
-- KEYS[2] history    stream: the run's events
-- KEYS[3] expiring   zset: finished run id -> when retention removes it (see run_ended, lib.lua)
-- KEYS[4] archiving  zset: finished run id -> when it ended, for the durable history
-- KEYS[5..] steps    hash: each step's state
-- ARGV[1] now_iso    finished_at
-- ARGV[2] by         who cancelled it
--
-- Returns {verdict, task ids of queued or running steps...}: ok | finished | missing
local run, history, expiring, archiving, now_iso, by = KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2]
local FIXED_KEYS = 4

local status = redis.call('HGET', run, 'status')
if not status then return {'missing'} end
if status == 'succeeded' or status == 'failed' or status == 'cancelled' then return {'finished', status} end
redis.call('HSET', run, 'status', 'cancelled', 'finished_at', now_iso)
record(history, now_iso, 'cancelled', 'by', by)
run_ended(run, expiring, archiving)
local revoked = {'ok'}
for i = FIXED_KEYS + 1, #KEYS do
  local step = KEYS[i]
  local state = redis.call('HMGET', step, 'status', 'task_id')
  if not is_finished(state[1] or 'pending') then
    redis.call('HSET', step, 'status', 'cancelled', 'finished_at', now_iso)
    if state[2] then table.insert(revoked, state[2]) end
  end
end
return revoked
