-- pause: how long the fleet must still hold back for a budget (used when no rate is configured).
-- KEYS[1] budget hash  NS:{rl:TENANT}  (field pause_until, us, Redis clock)
-- Returns the remaining pause in us (0 = none), computed on the server so no clocks are compared.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local until_ = tonumber(redis.call('HGET', KEYS[1], 'pause_until') or '0')
return math.max(0, until_ - now)
