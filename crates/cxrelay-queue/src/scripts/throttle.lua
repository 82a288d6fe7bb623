-- throttle: a 429 was seen; pause the whole fleet for this budget and (adaptive) lower its rate.
-- KEYS[1] budget hash  cxr:{rl:TENANT:ACTION}  (fields: see acquire.lua; cut_at = last rate cut)
-- ARGV: pause (us; the Retry-After, or a backoff when absent), adaptive (1|0), configured rate
-- Returns {pause remaining (us), cut (1|0)}. Every worker that meets the same burst of 429s
-- calls this; the rate is cut once per pause window, not once per worker.
local key = KEYS[1]
local pause, adaptive, conf = tonumber(ARGV[1]), ARGV[2] == '1', tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local h = redis.call('HMGET', key, 'pause_until', 'rate', 'cut_at', 'tat')
local until_ = math.max(tonumber(h[1] or '0'), now + pause)
redis.call('HSET', key, 'pause_until', until_, 'tat', math.max(tonumber(h[4] or '0'), until_))
local cut = 0
if adaptive and conf > 0 and now - tonumber(h[3] or '0') > math.max(pause, 1000000) then
  local rate = math.min(tonumber(h[2] or conf), conf)
  redis.call('HSET', key, 'ceiling', tostring(rate), 'rate', tostring(math.max(rate * 0.9, conf * 0.05)),
    'cut_at', now, 'adjusted', until_)
  cut = 1
end
redis.call('EXPIRE', key, 86400)
return {until_ - now, cut}
