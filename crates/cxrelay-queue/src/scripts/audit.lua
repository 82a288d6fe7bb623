-- audit (prelude, not a script of its own): prepended by scripts.rs to the scripts that write a
-- run's audit stream (checkpoint, replay, control), because a Redis script cannot call another.
-- Appends one event to the run's capped audit stream; `fields` is a flat list of field, value.
-- The stream lives as long as the run: once the run's state has a TTL (finished, cancelled,
-- still loading), the stream gets the same one, so an event written late never outlives it.
local function audit_event(audit, state, maxlen, fields)
  redis.call('XADD', audit, 'MAXLEN', '~', maxlen, '*', unpack(fields))
  local ttl = redis.call('PTTL', state)
  if ttl > 0 then redis.call('PEXPIRE', audit, ttl) end
end

