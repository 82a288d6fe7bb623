-- hint: the target stated its limit (a RateLimit-Policy header); a budget still discovering it
-- takes that as a confirmed ceiling and cruises just under it, skipping the search.
-- KEYS[1] budget hash  NS:{rl:TENANT}  (fields: see acquire.lua)
-- ARGV: the stated limit (requests/s), the highest rate discovery may reach, then the rules'
--       constants from cxrelay_core::ratelimit::hint_rules: confirmed cruise, min probe
-- Returns 1 when the hint was taken, 0 when the budget already cruises under a ceiling (from an
-- earlier hint, or from 429s, which are the better evidence; slow probing still finds a raised
-- limit).
local key = KEYS[1]
local limit = math.min(tonumber(ARGV[1]), tonumber(ARGV[2]))
local CONFIRMED_CRUISE, MIN_PROBE = tonumber(ARGV[3]), tonumber(ARGV[4])
if redis.call('HGET', key, 'phase') == 'cruise' then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('HSET', key, 'ceiling', string.format('%.9f', limit), 'rate', string.format('%.9f', limit * CONFIRMED_CRUISE),
  'probe', string.format('%.9f', MIN_PROBE), 'phase', 'cruise', 'adjusted', now)
redis.call('EXPIRE', key, 86400)
return 1
