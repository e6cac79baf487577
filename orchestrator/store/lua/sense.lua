-- Record a sensor's check and decide whether it starts a run (edge-triggered), atomically: two
-- beats or sensor loops checking at once still fire one edge.
--
-- KEYS[1] sensor     hash: holds (0|1), checked_at, result, checks, edge, fired_at, started_edge,
--                    last_run, last_run_at, error
-- ARGV[1] holds      '1' when the condition holds at this check
-- ARGV[2] now        epoch s
-- ARGV[3] cooldown   seconds after a fired edge during which no other fires
-- ARGV[4] rearm      'edge' (fire again only after the condition was seen false) | 'cooldown'
--                    (also while it stays true, once per cooldown)
-- ARGV[5] result     the check's output (JSON), kept for `orchestrator sensors`
--
-- Returns the number of the edge whose run should start, or 0. An edge fired but whose run was
-- never recorded (the checker died, the broker was down) is returned again, so some check starts
-- it: runs are submitted with the edge number in their idempotency key.
local sensor = KEYS[1]
local holds, now, cooldown, rearm, result = ARGV[1] == '1', tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], ARGV[5]

local state = redis.call('HMGET', sensor, 'holds', 'edge', 'started_edge', 'fired_at')
local held = state[1] == '1'
local edge, started = tonumber(state[2] or '0'), tonumber(state[3] or '0')
local fired_at = tonumber(state[4] or '0')

redis.call('HSET', sensor, 'holds', holds and '1' or '0', 'checked_at', now, 'result', result)
redis.call('HINCRBY', sensor, 'checks', 1)
redis.call('HDEL', sensor, 'error')

if started < edge then return edge end
if not holds then return 0 end
if held and rearm ~= 'cooldown' then return 0 end
if edge > 0 and now - fired_at < cooldown then return 0 end

edge = edge + 1
redis.call('HSET', sensor, 'edge', edge, 'fired_at', now)
return edge
