-- control: an operator pauses, resumes or cancels a run.
-- KEYS: every key of the run, in RunKeys::all() order ([12] audit stream, [13] outbox, [15] state
-- hash last).
-- ARGV[1] action: pause | resume | cancel, ARGV[2] who, ARGV[3] why, ARGV[4] retention seconds,
-- ARGV[5] audit stream length, ARGV[6] webhook event types wanted (see outbox_event).
-- pause: active → paused (nothing new is sent; items in flight finish and are recorded).
-- resume: paused → active (or finished, when nothing was left to deliver).
-- cancel: loading, active or paused → cancelled (nothing more is sent; pending items count as
-- cancelled, never as failed); the run's keys expire after the retention period, as a finished
-- run's do.
-- Returns {old status, new status}; an error reply names a transition that is not allowed.
local audit, outbox, state = KEYS[12], KEYS[13], KEYS[#KEYS]
local action, who, why, retention, audit_len = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local status = redis.call('HGET', state, 'status')
if not status then return redis.error_reply('ERR run does not exist') end
local allowed = {
  pause = {active = 'paused'},
  resume = {paused = 'active'},
  cancel = {loading = 'cancelled', active = 'cancelled', paused = 'cancelled'},
}
local to = allowed[action] and allowed[action][status]
if not to then
  return redis.error_reply('ERR cannot ' .. action .. ' a run that is ' .. status)
end
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
-- A run whose last items finished while it was paused has nothing left to deliver: resuming it
-- finishes it (no checkpoint would come to do so).
local counts = redis.call('HMGET', state, 'accepted', 'succeeded', 'failed', 'id', 'tenant', 'action', 'invalid')
local drained = tonumber(counts[1] or '0') - tonumber(counts[2] or '0') - tonumber(counts[3] or '0') == 0
if to == 'active' and drained then to = 'finished' end
redis.call('HSET', state, 'status', to)
if to == 'active' or to == 'finished' then
  redis.call('HDEL', state, 'status_reason', 'guard_ring')
else
  redis.call('HSET', state, 'status_reason', why .. ' (by ' .. who .. ')')
end
if to == 'cancelled' or to == 'finished' then
  redis.call('HSET', state, 'finished_ms', now)
  for j = 1, #KEYS do redis.call('EXPIRE', KEYS[j], retention) end
end
if to == 'finished' then
  audit_event(audit, state, audit_len, {'type', 'run.finished', 'succeeded', counts[2], 'failed', counts[3]})
  local total = tonumber(counts[1]) + tonumber(counts[7] or '0')
  outbox_event(outbox, state, ARGV[6], 'run.completed', {run_id = counts[4], tenant = counts[5], action = counts[6],
    succeeded = tonumber(counts[2]), failed = tonumber(counts[3]), validation_failures = tonumber(counts[7] or '0'),
    completion_rate = total > 0 and tonumber(counts[2]) / total or 1})
end
local event = {pause = 'run.paused', resume = 'run.resumed', cancel = 'run.cancelled'}
audit_event(audit, state, audit_len, {'type', event[action], 'by', who, 'reason', why, 'from', status, 'to', to})
local m = redis.call('HMGET', state, 'id', 'tenant', 'accepted', 'succeeded', 'failed')
local data = {run_id = m[1], tenant = m[2], by = who, reason = why}
if to == 'cancelled' then data.cancelled = tonumber(m[3]) - tonumber(m[4]) - tonumber(m[5]) end
outbox_event(outbox, state, ARGV[6], event[action], data)
return {status, to}
