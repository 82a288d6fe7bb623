-- checkpoint: record a batch of item outcomes and acknowledge their deliveries, atomically.
-- KEYS: every key of the run, in RunKeys::all() order (all of them expire with the run):
--   [1] items stream      NS:{run:ID}:items
--   [2] done bitmap       bit per index that succeeded
--   [3] finished bitmap   bit per index succeeded, failed or invalid
--   [4] failed hash       index -> JSON summary of a failed item's last failure
--   [5] payloads hash     index -> item JSON of a failed item (for replay)
--   [6] history hash      index -> the item's last attempts, one JSON record per line
--   [7] failstats hash    c:CLASS, s:STATUS, r:REASON, nreasons -> counts of failed items
--   [8] latency hash      histogram bucket -> count
--   [9] delayed zset      member "index|attempts|429s|deferrals|generation|replays|item", score = due ms
--   [10] invalid hash, [11] redeliveries hash (only expired here)
--   [12] audit stream     capped: every history record (attempts that did not succeed, deferrals)
--                         as an `attempt` event, and `run.finished` / `run.paused` (the guard)
--   [13] outbox stream    webhook events: item.failed, item.succeeded, run.completed, run.paused
--   [14] series hash      per 10 s bucket B: n:B finished, l:B latency sum (ms), c:B latencies
--   [15] state hash       the run's counters (the seed's state matrix), always last
-- A success writes two bits and a latency count, nothing per item: a finished run of a million
-- items holds two 125 KB bitmaps, not a million hash fields. The success path is the hot path:
-- four commands per item (XACK, XDEL, two SETBITs), latency counts summed per batch, and
-- indexes passed as the strings they arrived as (a Lua number argument is formatted with
-- printf on every call).
-- ARGV[1] group, ARGV[2] retention seconds, ARGV[3] history length, ARGV[4] distinct reasons
-- counted before the rest go under ARGV[5] (the "other" reason), ARGV[6] audit stream length,
-- ARGV[7] webhook event types wanted (see outbox_event), then 13 values per outcome:
--   entry id, index, kind (S succeeded | F failed | R retry | D deferred), attempts, 429s,
--   http status ('' = none), latency us, latency bucket ('' = none), delay ms,
--   history record ('' = none: a first-try success writes no history),
--   failure class, reason, failed-item summary JSON (the last three only for F)
-- An outcome whose delivery is no longer pending (XACK returns 0: another worker took it over
-- and finished it) changes nothing, so counters stay exact under re-delivery.
-- Returns {succeeded, failed, requeued, ignored, finished (1|0)}
local items, done, finished, failed, payloads, history, failstats, latency, delayed =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local state = KEYS[#KEYS]
local group, retention, history_len = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local max_reasons, other_reason, audit_len = tonumber(ARGV[4]), ARGV[5], ARGV[6]
local audit, outbox, wanted = KEYS[12], KEYS[13], ARGV[7]
local meta = wanted ~= '' and redis.call('HMGET', state, 'id', 'tenant', 'action') or {}
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)

-- Appends a record to an item's history, keeping the last history_len.
local function remember(index, record)
  local old = redis.call('HGET', history, index)
  local v = record
  if old then
    v = old .. '\n' .. record
    local _, lines = string.gsub(v, '\n', '')
    while lines + 1 > history_len do
      v = string.sub(v, string.find(v, '\n', 1, true) + 1)
      lines = lines - 1
    end
  end
  redis.call('HSET', history, index, v)
end

-- The fields of a stream entry, or nil when it is gone.
local function entry_fields(id)
  local e = redis.call('XRANGE', items, id, id)
  if not e[1] then return nil end
  local f = {}
  local fields = e[1][2]
  for j = 1, #fields, 2 do f[fields[j]] = fields[j + 1] end
  return f
end

local ok, bad, requeued, ignored, retries = 0, 0, 0, 0, 0
local latencies = {}
local lat_sum, lat_count = 0, 0
-- Finished outcomes of this batch in order, '1' failed / '0' succeeded, for the failure-rate guard.
local marks = {}
for k = 8, #ARGV, 13 do
  local id, index, kind, attempts, throttled = ARGV[k], ARGV[k + 1], ARGV[k + 2], ARGV[k + 3], ARGV[k + 4]
  local http, lat, bucket, delay, record = ARGV[k + 5], ARGV[k + 6], ARGV[k + 7], ARGV[k + 8], ARGV[k + 9]
  local class, reason, summary = ARGV[k + 10], ARGV[k + 11], ARGV[k + 12]
  local f = nil
  if kind ~= 'S' then f = entry_fields(id) end
  if redis.call('XACK', items, group, id) == 0 then
    ignored = ignored + 1
  else
    redis.call('XDEL', items, id)
    if bucket ~= '' then
      latencies[bucket] = (latencies[bucket] or 0) + 1
      lat_sum, lat_count = lat_sum + tonumber(lat), lat_count + 1
    end
    if record ~= '' then
      remember(index, record)
      audit_event(audit, state, audit_len, {'type', 'attempt', 'index', index, 'record', record})
    end
    if kind == 'S' then
      if redis.call('SETBIT', done, index, '1') == 0 then
        -- Already finished means it had failed before: its failure record goes.
        if redis.call('SETBIT', finished, index, '1') == 1 then
          redis.call('HDEL', failed, index)
          redis.call('HDEL', payloads, index)
        end
        ok = ok + 1
        marks[#marks + 1] = '0'
        outbox_event(outbox, state, wanted, 'item.succeeded', {run_id = meta[1], tenant = meta[2], index = tonumber(index),
          attempts = tonumber(attempts), status = tonumber(http)})
      end
    elseif kind == 'F' then
      if redis.call('GETBIT', finished, index) == 0 then
        redis.call('SETBIT', finished, index, '1')
        redis.call('HSET', failed, index, summary)
        if f and f['d'] then redis.call('HSET', payloads, index, f['d']) end
        redis.call('HINCRBY', failstats, 'c:' .. class, 1)
        if http ~= '' then
          redis.call('HINCRBY', failstats, 's:' .. http, 1)
        else
          redis.call('HINCRBY', failstats, 's:' .. class, 1)
        end
        -- Distinct reasons are bounded, so items that fail with per-item texts cannot grow this hash.
        if redis.call('HEXISTS', failstats, 'r:' .. reason) == 0 then
          if redis.call('HINCRBY', failstats, 'nreasons', 1) > max_reasons then reason = other_reason end
        end
        redis.call('HINCRBY', failstats, 'r:' .. reason, 1)
        bad = bad + 1
        marks[#marks + 1] = '1'
        outbox_event(outbox, state, wanted, 'item.failed', {run_id = meta[1], tenant = meta[2], index = tonumber(index),
          class = class, status = tonumber(http), reason = reason, attempts = tonumber(attempts)})
      end
    elseif (kind == 'R' or kind == 'D') and f and f['d'] then
      local deferrals = tonumber(f['n'] or '0')
      -- A deferral was not sent: the entry's own counts carry over unchanged.
      if kind == 'D' then
        -- Only deferrals worth a history record (breaker open, pause) count; waiting for a
        -- rate-limit slot is routine and leaves the item fresh.
        if record ~= '' then deferrals = deferrals + 1 end
        attempts, throttled = f['a'] or '0', f['t'] or '0'
      end
      redis.call('ZADD', delayed, now + tonumber(delay),
        index .. '|' .. attempts .. '|' .. throttled .. '|' .. deferrals .. '|' .. (f['g'] or '0') .. '|' .. (f['r'] or '0') .. '|' .. f['d'])
      requeued = requeued + 1
      if kind == 'R' then
        retries = retries + 1
      end
    end
  end
end
for bucket, n in pairs(latencies) do redis.call('HINCRBY', latency, bucket, n) end
-- Throughput and latency over time: three fields per batch, one bucket per 10 seconds.
local slot = tostring(math.floor(now / 10000))
if ok + bad > 0 then redis.call('HINCRBY', KEYS[14], 'n:' .. slot, ok + bad) end
if lat_count > 0 then
  redis.call('HINCRBY', KEYS[14], 'l:' .. slot, math.floor(lat_sum / 1000))
  redis.call('HINCRBY', KEYS[14], 'c:' .. slot, lat_count)
end
if ok > 0 then redis.call('HINCRBY', state, 'succeeded', ok) end
if bad > 0 then redis.call('HINCRBY', state, 'failed', bad) end
if retries > 0 then redis.call('HINCRBY', state, 'retries', retries) end
redis.call('HSET', state, 'last_snapshot_ms', now)
redis.call('HSETNX', state, 'started_ms', now)
local v = redis.call('HMGET', state, 'high_water', 'next_index', 'accepted', 'succeeded', 'failed', 'status',
  'guard_window', 'guard_rate', 'guard_ring')
local hw, next_index = tonumber(v[1]), tonumber(v[2])
local start_hw = hw
-- Every index below the high-water mark is finished, so the first clear bit from its byte on is
-- the new mark (one BITPOS per batch, not a GETBIT per item). Within the string BITPOS answers
-- the first clear bit (or the bit after the string when all are set); a start byte past the
-- string's end answers -1: the mark's own bit is clear there, so it stays. Indexes not enqueued
-- yet do not count.
if hw < next_index then
  local pos = redis.call('BITPOS', finished, 0, math.floor(hw / 8))
  if pos < 0 then pos = hw end
  hw = math.min(pos, next_index)
end
if hw ~= start_hw then redis.call('HSET', state, 'high_water', hw) end
local is_finished = 0
if v[6] == 'active' and tonumber(v[3]) - tonumber(v[4]) - tonumber(v[5]) == 0 then
  redis.call('HSET', state, 'status', 'finished', 'finished_ms', now)
  for j = 1, #KEYS do redis.call('EXPIRE', KEYS[j], retention) end
  is_finished = 1
  -- v was read after this batch's counts were added.
  audit_event(audit, state, audit_len, {'type', 'run.finished', 'succeeded', v[4], 'failed', v[5]})
  if wanted ~= '' then
    local invalid = tonumber(redis.call('HGET', state, 'invalid') or '0')
    local total = tonumber(v[3]) + invalid
    outbox_event(outbox, state, wanted, 'run.completed', {run_id = meta[1], tenant = meta[2], action = meta[3],
      succeeded = tonumber(v[4]), failed = tonumber(v[5]), validation_failures = invalid,
      completion_rate = total > 0 and tonumber(v[4]) / total or 1})
  end
end
-- The failure-rate guard (the seed's break condition, made operable): when more than guard_rate
-- percent of the last guard_window finished items failed, the run pauses itself. The window is a
-- string of '0'/'1' marks in the state hash, oldest first; a pause starts a fresh window.
local paused = 0
if is_finished == 0 and v[7] and #marks > 0 then
  local window, rate = tonumber(v[7]), tonumber(v[8])
  local ring = (v[9] or '') .. table.concat(marks)
  if #ring > window then ring = string.sub(ring, #ring - window + 1) end
  local _, failures = string.gsub(ring, '1', '')
  if v[6] == 'active' and #ring >= window and failures * 100 > rate * window then
    local why = 'failure-rate guard: ' .. failures .. ' of the last ' .. window .. ' finished items failed (more than ' .. v[8] .. '%)'
    redis.call('HSET', state, 'status', 'paused', 'status_reason', why, 'guard_ring', '')
    audit_event(audit, state, audit_len, {'type', 'run.paused', 'by', 'failure-rate guard', 'reason', why})
    outbox_event(outbox, state, wanted, 'run.paused', {run_id = meta[1], tenant = meta[2], by = 'failure-rate guard', reason = why})
    paused = 1
  else
    redis.call('HSET', state, 'guard_ring', ring)
  end
end
return {ok, bad, requeued, ignored, is_finished, paused}
