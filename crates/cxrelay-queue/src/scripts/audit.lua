-- audit and outbox (prelude, not a script of its own): prepended by scripts.rs to the scripts
-- that write a run's audit stream or webhook outbox (seal, checkpoint, replay, control), because
-- a Redis script cannot call another.
-- Appends one event to the run's capped audit stream; `fields` is a flat list of field, value.
-- The stream lives as long as the run: once the run's state has a TTL (finished, cancelled,
-- still loading), the stream gets the same one, so an event written late never outlives it.
local function audit_event(audit, state, maxlen, fields)
  redis.call('XADD', audit, 'MAXLEN', '~', maxlen, '*', unpack(fields))
  local ttl = redis.call('PTTL', state)
  if ttl > 0 then redis.call('PEXPIRE', audit, ttl) end
end

-- Appends one webhook event to the run's outbox when some endpoint wants its type: `wanted` is
-- the comma-wrapped list of wanted types, then ';' and the outbox's length cap
-- (",run.completed,item.failed,;100000"; '' = no webhooks), so an event is written in the same
-- atomic step as the state change it reports. Events the cap trims are counted by the
-- dispatcher (entries-added less length), never lost silently.
local function outbox_event(outbox, state, wanted, kind, data)
  if wanted == '' or not string.find(wanted, ',' .. kind .. ',', 1, true) then return end
  local cap = tonumber(string.match(wanted, ';(%d+)$') or '100000')
  redis.call('XADD', outbox, 'MAXLEN', '~', cap, '*', 'type', kind, 'data', cjson.encode(data))
  local ttl = redis.call('PTTL', state)
  if ttl > 0 then redis.call('PEXPIRE', outbox, ttl) end
end

