-- breaker: the fleet-wide circuit breaker of one tenant's target, on a sliding window.
-- KEYS[1] breaker hash   NS:{brk:TENANT}         state (closed|open|half), open_until (us),
--                                                probe_until (us), and per second of the window
--                                                b<sec mod window> = "sec:answers:failures"
-- KEYS[2] events stream  NS:{brk:TENANT}:events  breaker.opened / breaker.closed events
-- ARGV: mode (check|report), threshold, failure ratio (per mille), window (s), cooldown (us),
--       probe lease (us), tenant, then for report: answers, failures, probe result
--       ('' not a probe | success | failure | inconclusive)
-- Returns {verdict, wait_us, failures in window, answers in window, now_us}:
--   check:  'closed' (send), 'probe' (send: you are the half-open probe), 'open' (wait)
--   report: 'opened' (these failures opened it), 'reopened' (the probe failed), 'closed' (the
--           probe succeeded), 'inconclusive' (the probe's item had failed before, so its failure
--           says nothing about the target: another probe may go at once), 'open', 'counted'
--   check 'probe' waits the probe lease: the prober's other items hold back until it answers.
--   now_us is the server's clock when the verdict was reached: a worker's replies can cross in
--   flight, and it keeps the latest verdict by this stamp (Redis runs scripts one at a time).
-- Why a window and not "N consecutive": every worker reports its answers in batches (no round
-- trip per success), so the counts are exact across the fleet whatever the order in which pods
-- report; and a healthy target's random errors never reach the failure ratio.
local key, events = KEYS[1], KEYS[2]
local mode, threshold, ratio = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local window, cooldown, probe_lease, tenant = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local sec = tonumber(t[1])
local h = redis.call('HMGET', key, 'state', 'open_until', 'probe_until')
local state, open_until, probe_until = h[1] or 'closed', tonumber(h[2] or '0'), tonumber(h[3] or '0')

-- Answers and failures over the window's seconds.
local function window_counts()
  local answers, failures = 0, 0
  for s = sec - window + 1, sec do
    local b = redis.call('HGET', key, 'b' .. (s % window))
    if b then
      local bs, ba, bf = string.match(b, '^(%d+):(%d+):(%d+)$')
      if tonumber(bs) == s then
        answers = answers + tonumber(ba)
        failures = failures + tonumber(bf)
      end
    end
  end
  return answers, failures
end

local function event(kind, failures, answers)
  redis.call('XADD', events, 'MAXLEN', '~', 10000, '*', 'type', kind, 'tenant', tenant,
    'failures', failures, 'answers', answers, 'at_ms', math.floor(now / 1000))
end

local function clear_window()
  for s = 0, window - 1 do redis.call('HDEL', key, 'b' .. s) end
end

if mode == 'check' then
  if state == 'closed' then return {'closed', 0, 0, 0, now} end
  if state == 'open' and now < open_until then return {'open', open_until - now, 0, 0, now} end
  if probe_until < now then
    redis.call('HSET', key, 'state', 'half', 'probe_until', now + probe_lease)
    return {'probe', probe_lease, 0, 0, now}
  end
  return {'open', math.min(probe_until - now, 500000), 0, 0, now}
end

local add_answers, add_failures, probe = tonumber(ARGV[8]), tonumber(ARGV[9]), ARGV[10]
if add_answers > 0 then
  local slot = 'b' .. (sec % window)
  local b = redis.call('HGET', key, slot)
  local ba, bf = 0, 0
  if b then
    local bs, a, f = string.match(b, '^(%d+):(%d+):(%d+)$')
    if tonumber(bs) == sec then ba, bf = tonumber(a), tonumber(f) end
  end
  redis.call('HSET', key, slot, sec .. ':' .. (ba + add_answers) .. ':' .. (bf + add_failures))
end
redis.call('EXPIRE', key, 86400)
local answers, failures = window_counts()
if state ~= 'closed' then
  if probe == 'success' then
    redis.call('HSET', key, 'state', 'closed', 'probe_until', 0)
    clear_window()
    event('breaker.closed', failures, answers)
    return {'closed', 0, 0, 0, now}
  elseif probe == 'failure' then
    redis.call('HSET', key, 'state', 'open', 'open_until', now + cooldown, 'probe_until', 0)
    return {'reopened', cooldown, failures, answers, now}
  elseif probe == 'inconclusive' then
    redis.call('HSET', key, 'probe_until', 0)
    return {'inconclusive', 0, failures, answers, now}
  end
  return {'open', math.max(0, open_until - now), failures, answers, now}
end
if failures > threshold and failures * 1000 >= ratio * answers then
  redis.call('HSET', key, 'state', 'open', 'open_until', now + cooldown, 'probe_until', 0)
  event('breaker.opened', failures, answers)
  return {'opened', cooldown, failures, answers, now}
end
return {'counted', 0, failures, answers, now}
