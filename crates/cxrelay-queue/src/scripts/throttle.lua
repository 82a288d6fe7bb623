-- throttle: a 429 was seen; pause the whole fleet for this budget and (adaptive) lower its rate.
-- KEYS[1] budget hash  cxr:{rl:TENANT:ACTION}  (fields: see acquire.lua; cut_at = last rate cut)
-- ARGV: pause (us; the Retry-After, or a backoff when absent), adaptive (1|0), configured rate,
--       burst
-- Adaptive: the target's bucket is empty now and was full when the last pause ended, so its
-- limit is about (slots sent since − burst) / seconds since; the rate drops to just under that
-- estimate (and by at least 10%). The observation starts at the first send after the pause (or
-- after the budget was created), see acquire.lua. Mirrors cxrelay_core::ratelimit.
-- Returns {pause remaining (us), cut (1|0)}. Every worker that meets the same burst of 429s
-- calls this; the rate is cut once per pause window, not once per worker.
local key = KEYS[1]
local pause, adaptive, conf, burst = tonumber(ARGV[1]), ARGV[2] == '1', tonumber(ARGV[3]), tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local h = redis.call('HMGET', key, 'pause_until', 'rate', 'cut_at', 'tat', 'sent', 'epoch_at', 'epoch_sent')
local until_ = math.max(tonumber(h[1] or '0'), now + pause)
local tat = tonumber(h[4] or '0')
local cut = 0
if adaptive and conf > 0 and now - tonumber(h[3] or '0') > math.max(pause, 1000000) then
  local rate = math.min(tonumber(h[2] or conf), conf)
  -- Slots reserved for the future were not sent (they are deferred by the pause); a slot is
  -- due at its theoretical time minus the burst tolerance (see acquire.lua).
  local interval = math.max(1, math.floor(1000000 / rate + 0.5))
  local tolerance = interval * (math.max(1, math.floor(burst / 2)) - 1)
  local future = math.max(0, tat - tolerance - now) / interval
  local sent = tonumber(h[5] or '0') - tonumber(h[7] or '0') - future
  local epoch = tonumber(h[6] or '0')
  local secs = 0
  if epoch > 0 then secs = (now - epoch) / 1000000 end
  local ceiling = rate
  if secs >= 0.2 and sent - burst > 0 and (sent - burst) / secs < rate then
    ceiling = (sent - burst) / secs
  end
  local new_rate = math.max(math.min(rate * 0.9, ceiling * 0.98), conf * 0.05)
  redis.call('HSET', key, 'ceiling', string.format('%.9f', ceiling), 'rate', string.format('%.9f', new_rate),
    'cut_at', now, 'adjusted', until_)
  cut = 1
end
-- The next observation starts at the first send after the pause (the bucket has refilled).
redis.call('HSET', key, 'pause_until', until_, 'tat', math.max(tat, until_), 'epoch_at', 0)
redis.call('EXPIRE', key, 86400)
return {until_ - now, cut}
