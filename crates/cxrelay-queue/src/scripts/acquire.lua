-- acquire: reserve the next send slot of a fleet-wide budget (GCRA, scheduling variant).
-- KEYS[1] budget hash  NS:{rl:TENANT} (or NS:{rl:TENANT:ACTION} for an action's sub-limit)
--   tat          theoretical arrival time (us, Redis clock)
--   rate         rate in force (adaptive mode), requests/s
--   ceiling      learned limit at the last 429 (adaptive mode)
--   probe        speed of probing above the ceiling (1, divided on each confirmation of it)
--   adjusted     when the rate was last recovered (us)
--   pause_until  no sends before this (us), set by throttle.lua on a 429
--   sent         slots reserved so far; epoch_at / epoch_sent / epoch_rate: time, count and rate
--                of the first reservation after the last pause (0 = not yet); throttle.lua
--                estimates the target's limit from them
--   phase        discovery only: 'ss' (slow start: the rate grows by the slow-start factor a
--                second while the fleet uses every slot), 'ca' (after the first 429: it climbs by
--                the climb factor a second), 'cruise' (a ceiling is known: the adaptive rules
--                below, scaled to the ceiling). While growing, a slot is spaced at the rate of its
--                own send time (cxrelay_core::ratelimit::projected_rate), so the sends follow the
--                growth curve although slots are reserved ahead.
-- ARGV: configured rate (req/s; in discovery the highest rate allowed), burst, adaptive (1|0),
--       max wait (us), discover (1|0), initial rate (discovery), then the rules' constants from
--       cxrelay_core::ratelimit::acquire_rules: cruise, confirmed cruise, fast recovery, slow
--       recovery, slow-start growth, climb growth (per second)
-- Returns {wait_us, reserved (1 reserved | 0 too far | 2 paused), rate in force x1000}. Time comes from the Redis server, one
-- clock for every pod. While paused, or when the slot is further than max wait, nothing is
-- reserved and the caller defers the item instead of holding a worker slot.
-- The arithmetic mirrors cxrelay_core::ratelimit (schedule, usable_burst, Adaptive::recover):
-- only half the burst is spent, the other half absorbs network jitter at the target.
local key = KEYS[1]
local conf, burst, adaptive, max_wait = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3] == '1', tonumber(ARGV[4])
local discover, initial = ARGV[5] == '1', tonumber(ARGV[6])
local CRUISE, CONFIRMED_CRUISE, FAST_RECOVERY = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local SLOW_RECOVERY, SLOW_START, CLIMB = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local h = redis.call('HMGET', key, 'tat', 'rate', 'ceiling', 'adjusted', 'pause_until', 'epoch_at', 'sent', 'probe', 'phase')
local pause_until = tonumber(h[5] or '0')
local rate = conf
local phase = h[9] or 'ss'
local growth = nil
if discover and phase == 'ss' then growth = SLOW_START elseif discover and phase == 'ca' then growth = CLIMB end
if discover then
  rate = math.min(tonumber(h[2] or initial), conf)
  local adjusted = tonumber(h[4] or '0')
  if adjusted == 0 then
    redis.call('HSET', key, 'rate', string.format('%.9f', rate), 'adjusted', now)
  elseif now > adjusted and phase ~= 'cruise' then
    -- Grow only while the fleet uses every slot (the reservation horizon is at or past now):
    -- an idle or slow fleet learns nothing about the target by raising an unused rate.
    local interval = 1000000 / rate
    if tonumber(h[1] or '0') >= now - interval then
      local secs = (now - adjusted) / 1000000
      rate = math.min(rate * growth ^ secs, conf)
    end
    redis.call('HSET', key, 'rate', string.format('%.9f', rate), 'adjusted', now)
  end
end
if adaptive and (not discover or phase == 'cruise') then
  -- In discovery the learned ceiling sets the scale of recovery; otherwise the configured rate.
  local ceiling = tonumber(h[3] or '')
  local scale = conf
  if discover then scale = ceiling or rate end
  rate = math.min(tonumber(h[2] or conf), conf)
  local adjusted = tonumber(h[4] or now)
  -- After a cut, recovery starts only when the pause is over (throttle.lua sets adjusted ahead).
  if now > adjusted then
    local secs = (now - adjusted) / 1000000
    local probe = tonumber(h[8] or '1')
    local fast_until = conf
    -- Cruise just under the ceiling; closer to a confirmed one (probe < 1), see Adaptive::cruise.
    if ceiling and probe < 1 then fast_until = ceiling * CONFIRMED_CRUISE elseif ceiling then fast_until = ceiling * CRUISE end
    -- The tolerance keeps a rate stored at the cruise level from counting as below it.
    if rate < fast_until - 0.000001 then
      rate = math.min(rate + scale * FAST_RECOVERY * secs, math.max(fast_until, rate))
    else
      rate = rate + scale * SLOW_RECOVERY * probe * secs
    end
    rate = math.min(rate, conf)
    redis.call('HSET', key, 'rate', string.format('%.9f', rate), 'adjusted', now)
  end
end
redis.call('EXPIRE', key, 86400)
if pause_until > now then
  return {pause_until - now, 2, math.floor(rate * 1000)}
end
local interval = math.max(1, math.floor(1000000 / rate + 0.5))
local tolerance = interval * (math.max(1, math.floor(burst / 2)) - 1)
local tat = math.max(tonumber(h[1] or now), now)
local wait = math.max(0, tat - tolerance - now)
if wait > max_wait then
  return {wait, 0, math.floor(rate * 1000)}
end
local slot_rate = rate
if growth then
  slot_rate = math.min(rate * growth ^ (wait / 1000000), conf)
  interval = math.max(1, math.floor(1000000 / slot_rate + 0.5))
end
redis.call('HSET', key, 'tat', tat + interval)
if tonumber(h[6] or '0') == 0 then
  redis.call('HSET', key, 'epoch_at', now + wait, 'epoch_sent', tonumber(h[7] or '0'), 'epoch_rate', string.format('%.9f', slot_rate))
end
redis.call('HINCRBY', key, 'sent', 1)
return {wait, 1, math.floor(rate * 1000)}
