-- export_submitted: the target accepted an export execution; record its id on the run.
-- KEYS: every key of the run, in RunKeys::all() order ([12] audit stream, [15] state hash last).
-- ARGV[1] execution id, ARGV[2] deadline (ms since the epoch), ARGV[3] audit stream length.
-- A completion that arrived before this record (a fast callback) is kept: the state only moves
-- from queued (or submitted: a re-send of the same submission) to submitted.
-- Returns the export state after the call.
local audit, state = KEYS[12], KEYS[#KEYS]
local cur = redis.call('HGET', state, 'export_state')
if not cur then return redis.error_reply('ERR not an export run') end
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
if redis.call('HEXISTS', state, 'execution_id') == 0 or cur == 'queued' or cur == 'submitted' then
  redis.call('HSET', state, 'execution_id', ARGV[1])
end
if cur == 'queued' then
  redis.call('HSET', state, 'export_state', 'submitted', 'submitted_ms', now, 'deadline_ms', ARGV[2])
  audit_event(audit, state, ARGV[3], {'type', 'export.submitted', 'execution_id', ARGV[1]})
  return 'submitted'
end
return cur
