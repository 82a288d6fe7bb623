-- throttle: a 429 was seen; pause the whole fleet for this budget and (adaptive) lower its rate.
-- KEYS[1] budget hash  NS:{rl:TENANT}  (fields: see acquire.lua; cut_at = last rate cut;
--         cut_sent, cut_secs, cut_future = the observation the last cut estimated the limit from,
--         kept so an operator can see why the rate is where it is)
-- ARGV: pause (us; the Retry-After, or a backoff when absent), adaptive (1|0), configured rate,
--       burst, discover (1|0), then the rules' constants from
--       cxrelay_core::ratelimit::throttle_rules: decrease, cruise, confirmed cruise, floor,
--       confirm within, probe slowdown, min probe, min estimate secs, refine min gap, refine
--       noise floor, min discovered rate, slow-start growth, climb growth, slow-start cut
-- Discovery (no rate configured; mirrors cxrelay_core::ratelimit::Discovery): a window runs from
-- the first send after a pause (epoch_at, epoch_rate) to the 429 that ends it, at the rate the
-- phase grows (acquire.lua spaces slots so the sends follow that curve). The slow start's 429
-- keeps its window (w1_start, w1_end, w1_secs) and cuts the rate (slow-start cut); the climb's
-- 429 solves both windows for the limit (solve_limit below: the target's unknown burst is what
-- each window's excess over the limit must equal), which becomes a confirmed ceiling. When they
-- do not solve, the rate at the 429 is the ceiling and the adaptive rules below bring it down at
-- the next 429s.
-- Adaptive: the target's bucket is empty now and was full when the last pause ended, so its
-- limit is about (slots sent since − burst) / seconds since; the rate drops to just under that
-- estimate (and by at least 10%). The observation starts at the first send after the pause (or
-- after the budget was created), see acquire.lua. Mirrors cxrelay_core::ratelimit.
-- Returns {pause remaining (us), cut (1|0)}. Every worker that meets the same burst of 429s
-- calls this; the rate is cut once per pause window, not once per worker.
local key = KEYS[1]
local pause, adaptive, conf, burst = tonumber(ARGV[1]), ARGV[2] == '1', tonumber(ARGV[3]), tonumber(ARGV[4])
local discover = ARGV[5] == '1'
local DECREASE, CRUISE, CONFIRMED_CRUISE, FLOOR = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local CONFIRM_WITHIN, PROBE_SLOWDOWN, MIN_PROBE = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12])
local MIN_ESTIMATE_SECS, REFINE_MIN_GAP, REFINE_NOISE = tonumber(ARGV[13]), tonumber(ARGV[14]), tonumber(ARGV[15])
local MIN_DISCOVERED_RATE = tonumber(ARGV[16])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local SLOW_START, CLIMB, SLOW_START_CUT = tonumber(ARGV[17]), tonumber(ARGV[18]), tonumber(ARGV[19])
local h = redis.call('HMGET', key, 'pause_until', 'rate', 'cut_at', 'tat', 'sent', 'epoch_at', 'epoch_sent',
  'ceiling', 'probe', 'phase', 'cut_sent', 'cut_secs', 'adjusted', 'epoch_rate', 'w1_start', 'w1_end', 'w1_secs')

-- A window's excess over `limit` and its seconds above it; mirrors cxrelay_core::ratelimit::Window.
local function ramp(w)
  local lg = math.log(w.growth)
  if lg > 1e-9 and w.end_rate > w.start_rate * (1 + 1e-9) then return lg end
  return nil
end
local function excess(w, limit)
  if limit >= w.end_rate then return 0 end
  local lg = ramp(w)
  if not lg then return (w.end_rate - limit) * w.secs end
  if limit > w.start_rate then return (w.end_rate - limit - limit * math.log(w.end_rate / limit)) / lg end
  local ramp_secs = math.log(w.end_rate / w.start_rate) / lg
  return (w.end_rate - w.start_rate) / lg - limit * ramp_secs + (w.start_rate - limit) * math.max(w.secs - ramp_secs, 0)
end
local function draining_secs(w, limit)
  local lg = ramp(w)
  if limit >= w.end_rate then return 0 end
  if lg and limit > w.start_rate then return math.log(w.end_rate / limit) / lg end
  return w.secs
end
-- Mirrors cxrelay_core::ratelimit::solve_limit: where both windows' excesses agree.
local function solve_limit(first, second)
  local function gap(l) return excess(second, l) - excess(first, l) end
  local hi = math.min(first.end_rate, second.end_rate)
  local lo, up = hi * 1e-3, hi
  local g_lo, g_hi = gap(lo), gap(up)
  if not (hi > 0) or g_lo * g_hi >= 0 then return nil end
  for _ = 1, 64 do
    local mid = (lo + up) / 2
    if (gap(mid) > 0) == (g_lo > 0) then lo = mid else up = mid end
  end
  local limit = (lo + up) / 2
  if math.abs(draining_secs(first, limit) - draining_secs(second, limit)) >= REFINE_MIN_GAP and excess(first, limit) > 0 then
    return limit
  end
  return nil
end

local until_ = math.max(tonumber(h[1] or '0'), now + pause)
local tat = tonumber(h[4] or '0')
local cut = 0
local phase = h[10] or 'ss'
local fresh_cut = now - tonumber(h[3] or '0') > math.max(pause, 1000000)
if discover and fresh_cut and phase ~= 'cruise' and h[2] then
  -- The rate in force now (acquire.lua last grew it at `adjusted`, a moment ago).
  local growth = SLOW_START
  if phase == 'ca' then growth = CLIMB end
  local adjusted = tonumber(h[13] or now)
  local end_rate = math.min(tonumber(h[2]) * growth ^ (math.max(0, now - adjusted) / 1000000), conf)
  local epoch = tonumber(h[6] or '0')
  local secs = 0
  if epoch > 0 then secs = math.max(0, now - epoch) / 1000000 end
  local window = {start_rate = tonumber(h[14] or '') or end_rate, end_rate = end_rate, growth = growth, secs = secs}
  if phase == 'ss' then
    redis.call('HSET', key, 'rate', string.format('%.9f', math.max(end_rate * SLOW_START_CUT, MIN_DISCOVERED_RATE)), 'phase', 'ca',
      'w1_start', string.format('%.9f', window.start_rate), 'w1_end', string.format('%.9f', end_rate), 'w1_secs', string.format('%.6f', secs))
  else
    local limit = nil
    local w1_start, w1_end, w1_secs = tonumber(h[15] or ''), tonumber(h[16] or ''), tonumber(h[17] or '')
    if w1_start and w1_end and w1_secs then
      limit = solve_limit({start_rate = w1_start, end_rate = w1_end, growth = SLOW_START, secs = w1_secs}, window)
    end
    if limit then
      redis.call('HSET', key, 'ceiling', string.format('%.9f', limit), 'rate', string.format('%.9f', limit * CONFIRMED_CRUISE),
        'probe', string.format('%.9f', 1 / PROBE_SLOWDOWN), 'phase', 'cruise')
    else
      redis.call('HSET', key, 'ceiling', string.format('%.9f', end_rate), 'rate', string.format('%.9f', end_rate * CRUISE),
        'probe', 1, 'phase', 'cruise')
    end
  end
  redis.call('HSET', key, 'cut_at', now, 'adjusted', until_)
  cut = 1
elseif adaptive and conf > 0 and fresh_cut and (not discover or h[2]) then
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
  local estimate = nil
  if secs >= MIN_ESTIMATE_SECS and sent - burst > 0 then estimate = (sent - burst) / secs end
  -- Discovery does not know the target's burst, which biases that estimate high by
  -- burst / secs; two observations of different lengths give the limit without it
  -- (sent = burst + limit x secs). A result far below the one-point estimate is noise.
  -- Mirrors cxrelay_core::ratelimit::refine_estimate.
  local prev_sent, prev_secs = tonumber(h[11] or ''), tonumber(h[12] or '')
  if discover and estimate and prev_sent and prev_secs and math.abs(secs - prev_secs) >= REFINE_MIN_GAP then
    local limit = (sent - prev_sent) / (secs - prev_secs)
    if limit >= REFINE_NOISE * estimate and sent - limit * secs >= 0 then estimate = limit end
  end
  if estimate and estimate < rate then ceiling = estimate end
  -- A ceiling met again within 3% is confirmed: probe above it 4x slower (down to 1/64) and
  -- cruise closer to it; a moved ceiling restores fast probing (Adaptive::on_throttle).
  local old_ceiling, probe = tonumber(h[8] or ''), tonumber(h[9] or '1')
  local cruise = CRUISE
  if old_ceiling and math.abs(ceiling - old_ceiling) <= CONFIRM_WITHIN * old_ceiling then
    probe = math.max(probe / PROBE_SLOWDOWN, MIN_PROBE)
    cruise = CONFIRMED_CRUISE
  else
    probe = 1
  end
  local floor = conf * FLOOR
  if discover then floor = MIN_DISCOVERED_RATE end
  local new_rate = math.max(math.min(rate * DECREASE, ceiling * cruise), floor)
  redis.call('HSET', key, 'ceiling', string.format('%.9f', ceiling), 'rate', string.format('%.9f', new_rate),
    'probe', string.format('%.9f', probe),
    'cut_at', now, 'adjusted', until_, 'cut_sent', sent, 'cut_secs', string.format('%.6f', secs), 'cut_future', future)
  cut = 1
end
-- The next observation starts at the first send after the pause (the bucket has refilled).
redis.call('HSET', key, 'pause_until', until_, 'tat', math.max(tat, until_), 'epoch_at', 0)
redis.call('EXPIRE', key, 86400)
return {until_ - now, cut}
