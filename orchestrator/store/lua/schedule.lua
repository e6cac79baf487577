-- Decide what one wake-up of a schedule does, once: however many beats send the tick, the first
-- decision stands and every later call for that tick is told it (and follows it).
--
-- KEYS[1] state      hash: tick, tick_at, decision, batch, run, previous, last_skipped,
--                    skipped, dropped (and started, counted by the caller)
-- ARGV[1] expected   the state's `run` (the run it started last) as the caller read it ('' for none)
-- ARGV[2] tick       the newest tick of the batch, ISO-8601
-- ARGV[3] tick_at    that tick, epoch s
-- ARGV[4] batch      JSON list of the ticks to start (ISO-8601, oldest first)
-- ARGV[5] dropped    how many missed ticks are not in the batch
-- ARGV[6] overlap    skip | allow | cancel_previous
-- ARGV[7] last_status the status of run `expected` as the caller read it after reading `expected`
--                    (that run's hash is in its own slot on Redis Cluster, so it is not read here)
--
-- Returns {verdict, decision, batch, previous, running}: verdict 'decided' (this call decided),
-- 'seen' (this tick was decided before: its decision and batch), 'stale' (a newer tick was
-- decided: do nothing) or 'retry' (the last run changed since the caller read it: read again);
-- decision 'started' | 'skipped'; previous the run that was last before this tick; running '1'
-- when it was unfinished at the decision.
local state = KEYS[1]
local expected, tick, tick_at = ARGV[1], ARGV[2], tonumber(ARGV[3])
local batch, dropped, overlap, last_status = ARGV[4], tonumber(ARGV[5]), ARGV[6], ARGV[7]

local stored = redis.call('HMGET', state, 'tick_at', 'decision', 'batch', 'previous', 'run')
local stored_at, stored_decision, stored_batch = tonumber(stored[1]), stored[2], stored[3]
local stored_previous, stored_run = stored[4] or '', stored[5] or ''
if stored_at and stored_at > tick_at then return {'stale', stored_decision, stored_batch, stored_previous, '0'} end
if stored_at and stored_at == tick_at then return {'seen', stored_decision, stored_batch, stored_previous, '0'} end
if stored_run ~= expected then return {'retry', '', '', '', '0'} end

local running = expected ~= '' and (last_status == 'pending' or last_status == 'running')
local decision = 'started'
if overlap == 'skip' and running then decision = 'skipped' end

redis.call('HSET', state, 'tick', tick, 'tick_at', ARGV[3], 'decision', decision, 'batch', batch, 'previous', expected)
if decision == 'skipped' then
  redis.call('HSET', state, 'last_skipped', tick)
  redis.call('HINCRBY', state, 'skipped', #cjson.decode(batch))
end
if dropped > 0 then redis.call('HINCRBY', state, 'dropped', dropped) end
local flag = '0'
if running then flag = '1' end
return {'decided', decision, batch, expected, flag}
