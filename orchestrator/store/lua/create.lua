-- Record a new run with its roots queued and guarded by the outbox, atomically; with an
-- idempotency key already used, answer with the run it started and write nothing.
--
-- KEYS[1] run            hash: the run's fields
-- KEYS[2] runs           zset: run id -> created (epoch s), the store's index
-- KEYS[3] runs_of        zset: the same, for the run's workflow
-- KEYS[4] history        stream: the run's events
-- KEYS[5] outbox         zset: unit member -> when to publish it again
-- KEYS[6] submission     string: the run id an idempotency key started (the run's own hash when
--                        there is no key: ARGV[1] is then '')
-- then two keys per root: its step hash, and the broker's list its message goes to (its step
-- hash again when it has no message)
-- ARGV[1] ttl            seconds the submission key answers with its run, '' for no key
-- ARGV[2] run_id
-- ARGV[3] created_at     ISO-8601, the history's `at`
-- ARGV[4] score          created (epoch s): the indexes' score
-- ARGV[5] guard          outbox score of the roots (epoch s): when the sweeper publishes them itself
-- ARGV[6] trigger        the submitted event's trigger
-- ARGV[7] by             who started it ('' for no one)
-- ARGV[8] fields         how many field/value pairs of the run's hash follow
-- then those pairs, then three arguments per root: its name, its member, and its message as the
-- broker stores it ('' for none: the caller publishes it)
--
-- A root with a message is pushed onto its queue here (the broker is this Redis), like the
-- dependents complete.lua fires; its outbox entry guards it all the same until a claim ends it.
-- The caller passes messages only with an idempotency key (only this script can tell whether the
-- run is created); without one it pushes them itself, right after this call in the same pipeline.
--
-- Returns {'created'} or {'exists', run id}.
local run, runs, runs_of, history, outbox, submission = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local ttl, run_id, created_at, score, guard = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local trigger, by, fields = ARGV[6], ARGV[7], tonumber(ARGV[8])
local FIXED_KEYS, FIXED_ARGS, KEYS_PER, ARGS_PER = 6, 8 + 2 * fields, 2, 3

if ttl ~= '' then
  local existing = redis.call('GET', submission)
  if existing then return {'exists', existing} end
  redis.call('SET', submission, run_id, 'EX', ttl)
end

redis.call('HSET', run, unpack(ARGV, 9, FIXED_ARGS))
redis.call('ZADD', runs, score, run_id)
redis.call('ZADD', runs_of, score, run_id)
record(history, created_at, 'submitted', 'trigger', trigger, 'by', by)

local writes = batched()  -- the outbox entries and the messages, a command per BATCH roots; the events
for i = 1, (#KEYS - FIXED_KEYS) / KEYS_PER do
  local k, a = FIXED_KEYS + KEYS_PER * (i - 1), FIXED_ARGS + ARGS_PER * (i - 1)
  local step, queue, name, member, message = KEYS[k + 1], KEYS[k + 2], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  redis.call('HSET', step, 'status', 'queued')
  writes.record(history, created_at, 'queued', 'step', name)
  writes.zadd(outbox, guard, member)  -- first: the guards go out before any message
  if message ~= '' then writes.lpush(queue, message) end
end
writes.send()
return {'created'}
