-- export_finish: an export execution ends (the target's callback or a poll), or misses its
-- deadline.
-- KEYS: every key of the run, in RunKeys::all() order ([12] audit stream, [13] outbox, [15]
-- state hash last).
-- ARGV[1] complete | overdue, ARGV[2] the target's status word, ARGV[3] 1 = succeeded,
-- ARGV[4] rows ('' = not reported), ARGV[5] latency ms ('' = unknown), ARGV[6] execution id,
-- ARGV[7] source (callback | poll | deadline), ARGV[8] audit stream length, ARGV[9] webhook
-- event types wanted (see outbox_event).
-- complete: queued, submitted or overdue → completed | failed (a late completion still lands);
-- already completed or failed → nothing changes (a repeated callback).
-- overdue: submitted → overdue; anything else is left alone.
-- Returns {'changed' | 'duplicate' | 'unchanged', export state after}.
local audit, outbox, state = KEYS[12], KEYS[13], KEYS[#KEYS]
local mode = ARGV[1]
local cur = redis.call('HGET', state, 'export_state')
if not cur then return redis.error_reply('ERR not an export run') end
local m = redis.call('HMGET', state, 'id', 'tenant', 'action', 'dataset', 'execution_id', 'submitted_ms', 'deadline_ms')
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
if mode == 'overdue' then
  if cur ~= 'submitted' then return {'unchanged', cur} end
  redis.call('HSET', state, 'export_state', 'overdue', 'overdue_ms', now)
  audit_event(audit, state, ARGV[8], {'type', 'export.overdue', 'execution_id', m[5] or '', 'deadline_ms', m[7] or ''})
  outbox_event(outbox, state, ARGV[9], 'export.overdue', {run_id = m[1], tenant = m[2], data_action = m[3], dataset = m[4],
    execution_id = m[5], submitted_ms = tonumber(m[6] or ''), deadline_ms = tonumber(m[7] or '')})
  return {'changed', 'overdue'}
end
if cur == 'completed' or cur == 'failed' then return {'duplicate', cur} end
local to = ARGV[3] == '1' and 'completed' or 'failed'
redis.call('HSET', state, 'export_state', to, 'export_status', ARGV[2], 'completed_ms', now, 'completion_source', ARGV[7])
if m[5] == false or m[5] == '' then redis.call('HSET', state, 'execution_id', ARGV[6]) end
if ARGV[4] ~= '' then redis.call('HSET', state, 'rows', ARGV[4]) end
if ARGV[5] ~= '' then redis.call('HSET', state, 'latency_ms', ARGV[5]) end
local fields = {'type', 'export.completed', 'execution_id', ARGV[6], 'status', ARGV[2], 'source', ARGV[7]}
if ARGV[4] ~= '' then table.insert(fields, 'rows'); table.insert(fields, ARGV[4]) end
if ARGV[5] ~= '' then table.insert(fields, 'latency_ms'); table.insert(fields, ARGV[5]) end
audit_event(audit, state, ARGV[8], fields)
outbox_event(outbox, state, ARGV[9], 'export.completed', {run_id = m[1], tenant = m[2], data_action = m[3], dataset = m[4],
  execution_id = ARGV[6], status = ARGV[2], state = to, rows_exported = tonumber(ARGV[4]), latency_ms = tonumber(ARGV[5]),
  source = ARGV[7], was_overdue = cur == 'overdue'})
return {'changed', to}
