-- breaker: the fleet-wide circuit breaker of one target.
-- KEYS[1] breaker hash   cxr:{brk:TENANT}         failures, state (closed|open|half),
--                                                 open_until (us), probe_until (us)
-- KEYS[2] events stream  cxr:{brk:TENANT}:events  breaker.opened / breaker.closed events
-- ARGV: mode (check|failure|success|probe_success), threshold, cooldown (us), probe lease (us),
--       target name
-- Returns {verdict, wait_us, failures}:
--   check:   'closed' (send), 'probe' (send: you are the half-open probe), 'open' (wait)
--   failure: 'opened' (this failure opened it), 'reopened' (the probe failed), 'open' (it
--            already is: wait), 'counted'
--   success: 'reset', 'noop'; while open, only the probe's success ('probe_success') closes it:
--            'closed'. A late success of a request sent before the breaker opened proves little.
local key, events = KEYS[1], KEYS[2]
local mode, threshold, cooldown, probe_lease, target = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local h = redis.call('HMGET', key, 'failures', 'state', 'open_until', 'probe_until')
local failures, state = tonumber(h[1] or '0'), h[2] or 'closed'
local open_until, probe_until = tonumber(h[3] or '0'), tonumber(h[4] or '0')
local function event(kind)
  redis.call('XADD', events, 'MAXLEN', '~', 10000, '*', 'type', kind, 'target', target,
    'failures', failures, 'at_ms', math.floor(now / 1000))
end
if mode == 'check' then
  if state == 'closed' then return {'closed', 0, failures} end
  if state == 'open' and now < open_until then return {'open', open_until - now, failures} end
  if probe_until < now then
    redis.call('HSET', key, 'state', 'half', 'probe_until', now + probe_lease)
    return {'probe', 0, failures}
  end
  return {'open', math.min(probe_until - now, 500000), failures}
elseif mode == 'failure' then
  failures = redis.call('HINCRBY', key, 'failures', 1)
  if state == 'closed' and failures > threshold then
    redis.call('HSET', key, 'state', 'open', 'open_until', now + cooldown, 'probe_until', 0)
    event('breaker.opened')
    return {'opened', cooldown, failures}
  elseif state == 'half' then
    redis.call('HSET', key, 'state', 'open', 'open_until', now + cooldown, 'probe_until', 0)
    return {'reopened', cooldown, failures}
  elseif state == 'open' then
    return {'open', math.max(0, open_until - now), failures}
  end
  return {'counted', 0, failures}
else
  if state ~= 'closed' then
    if mode ~= 'probe_success' then
      return {'open', math.max(0, open_until - now), failures}
    end
    redis.call('HSET', key, 'state', 'closed', 'failures', 0, 'probe_until', 0)
    event('breaker.closed')
    return {'closed', 0, 0}
  elseif failures > 0 then
    redis.call('HSET', key, 'failures', 0)
    return {'reset', 0, 0}
  end
  return {'noop', 0, 0}
end
