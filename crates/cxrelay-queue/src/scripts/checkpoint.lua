-- checkpoint: record a batch of item outcomes and acknowledge their deliveries, atomically.
-- KEYS[1] state hash         cxr:{run:ID}:state     the run's counters (the seed's state matrix)
-- KEYS[2] items stream       cxr:{run:ID}:items
-- KEYS[3] done bitmap        cxr:{run:ID}:done      bit per index that succeeded
-- KEYS[4] finished bitmap    cxr:{run:ID}:finished  bit per index succeeded, failed or invalid
-- KEYS[5] results hash       cxr:{run:ID}:results   index -> "status|attempts|http|latency_us"
-- KEYS[6] failures hash      cxr:{run:ID}:failures  index -> last error (failed and retried items)
-- KEYS[7] latency hash       cxr:{run:ID}:latency   histogram bucket -> count
-- KEYS[8] delayed zset       cxr:{run:ID}:delayed   member "index|attempts|item", score = due ms
-- ARGV[1] group, ARGV[2] retention seconds, ARGV[3] count of per-run keys that expire (K),
-- ARGV[4..3+K] those key names, then 9 values per outcome:
--   entry id, index, kind (S succeeded | F failed | R retry | D deferred | A already done),
--   attempts, http status ('' = none), latency us, latency bucket ('' = none), delay ms, error
-- An outcome whose delivery is no longer pending (XACK returns 0: another worker took it over
-- and finished it) changes nothing, so counters stay exact under re-delivery.
-- Returns {succeeded, failed, requeued, ignored, finished (1|0)}
local state, items, done, finished, results, failures, latency, delayed =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local group, retention, nkeys = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local base = 4 + nkeys
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local ok, bad, requeued, ignored, retries = 0, 0, 0, 0, 0
for k = base, #ARGV, 9 do
  local id, index, kind, attempts = ARGV[k], ARGV[k + 1], ARGV[k + 2], ARGV[k + 3]
  local http, lat, bucket, delay, err = ARGV[k + 4], ARGV[k + 5], ARGV[k + 6], ARGV[k + 7], ARGV[k + 8]
  local item = nil
  if kind == 'R' or kind == 'D' then
    local e = redis.call('XRANGE', items, id, id)
    if e[1] then
      local fields = e[1][2]
      for j = 1, #fields, 2 do if fields[j] == 'd' then item = fields[j + 1] end end
    end
  end
  if redis.call('XACK', items, group, id) == 0 then
    ignored = ignored + 1
  else
    redis.call('XDEL', items, id)
    local idx = tonumber(index)
    if bucket ~= '' then redis.call('HINCRBY', latency, bucket, 1) end
    if kind == 'S' then
      if redis.call('SETBIT', done, idx, 1) == 0 then
        redis.call('SETBIT', finished, idx, 1)
        redis.call('HSET', results, index, 'S|' .. attempts .. '|' .. http .. '|' .. lat)
        ok = ok + 1
      end
    elseif kind == 'F' then
      if redis.call('GETBIT', finished, idx) == 0 then
        redis.call('SETBIT', finished, idx, 1)
        redis.call('HSET', results, index, 'F|' .. attempts .. '|' .. http .. '|' .. lat)
        redis.call('HSET', failures, index, err)
        bad = bad + 1
      end
    elseif kind == 'R' or kind == 'D' then
      if item then
        redis.call('ZADD', delayed, now + tonumber(delay), index .. '|' .. attempts .. '|' .. item)
        requeued = requeued + 1
        if kind == 'R' then
          retries = retries + 1
          redis.call('HSET', results, index, 'R|' .. attempts .. '|' .. http .. '|' .. lat)
          redis.call('HSET', failures, index, err)
        end
      end
    end
  end
end
if ok > 0 then redis.call('HINCRBY', state, 'succeeded', ok) end
if bad > 0 then redis.call('HINCRBY', state, 'failed', bad) end
if retries > 0 then redis.call('HINCRBY', state, 'retries', retries) end
redis.call('HSET', state, 'last_snapshot_ms', now)
redis.call('HSETNX', state, 'started_ms', now)
local v = redis.call('HMGET', state, 'high_water', 'next_index', 'accepted', 'succeeded', 'failed', 'status')
local hw, next_index = tonumber(v[1]), tonumber(v[2])
local start_hw = hw
while hw < next_index and redis.call('GETBIT', finished, hw) == 1 do hw = hw + 1 end
if hw ~= start_hw then redis.call('HSET', state, 'high_water', hw) end
local is_finished = 0
if v[6] == 'active' and tonumber(v[3]) - tonumber(v[4]) - tonumber(v[5]) == 0 then
  redis.call('HSET', state, 'status', 'finished', 'finished_ms', now)
  for j = 4, 3 + nkeys do redis.call('EXPIRE', ARGV[j], retention) end
  is_finished = 1
end
return {ok, bad, requeued, ignored, is_finished}
