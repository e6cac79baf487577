-- Record the run a sensor's edge started (after its submission), keeping the latest edge's.
--
-- KEYS[1] sensor     hash (see sense.lua)
-- ARGV[1] edge       the edge number the run belongs to
-- ARGV[2] run_id     the run it started
-- ARGV[3] now        epoch s
local sensor = KEYS[1]
local edge, run_id, now = tonumber(ARGV[1]), ARGV[2], ARGV[3]

local started = tonumber(redis.call('HGET', sensor, 'started_edge') or '0')
if edge > started then
  redis.call('HSET', sensor, 'started_edge', edge, 'last_run', run_id, 'last_run_at', now)
end
return edge > started and 1 or 0
