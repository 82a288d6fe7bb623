-- seal: the producer read its whole input; make the run visible to workers.
-- KEYS: every key of the run, in RunKeys::all() order (all of them expire with the run):
--   [1] items  [2] done  [3] finished bitmap  [4] failed  [5] payloads  [6] history
--   [7] failstats  [8] latency  [9] delayed  [10] invalid  [11] redeliveries  [12] audit
--   [13] outbox  [14] series  [15] state hash (last)
-- ARGV: beyond_max (items past --max-items), break condition ('' = none), retention seconds,
-- webhook event types wanted (see outbox_event).
-- Returns: the run's status after sealing.
local finished, outbox, state = KEYS[3], KEYS[13], KEYS[#KEYS]
local wanted = ARGV[4]
local status = redis.call('HGET', state, 'status')
if not status then return redis.error_reply('ERR run does not exist') end
redis.call('HSET', state, 'beyond_max', ARGV[1])
if ARGV[2] ~= '' then redis.call('HSET', state, 'break', ARGV[2]) end
if status ~= 'loading' then return status end
local v = redis.call('HMGET', state, 'accepted', 'succeeded', 'failed', 'next_index', 'high_water', 'id', 'tenant', 'action', 'invalid')
outbox_event(outbox, state, wanted, 'run.started', {run_id = v[6], tenant = v[7], action = v[8],
  accepted = tonumber(v[1]), validation_failures = tonumber(v[9] or '0')})
local hw, next_index = tonumber(v[5]), tonumber(v[4])
while hw < next_index and redis.call('GETBIT', finished, hw) == 1 do hw = hw + 1 end
redis.call('HSET', state, 'high_water', hw)
if tonumber(v[1]) - tonumber(v[2]) - tonumber(v[3]) == 0 then
  local t = redis.call('TIME')
  redis.call('HSET', state, 'status', 'finished', 'finished_ms', t[1] * 1000 + math.floor(t[2] / 1000))
  for k = 1, #KEYS do redis.call('EXPIRE', KEYS[k], tonumber(ARGV[3])) end
  local total = tonumber(v[1]) + tonumber(v[9] or '0')
  outbox_event(outbox, state, wanted, 'run.completed', {run_id = v[6], tenant = v[7], action = v[8],
    succeeded = tonumber(v[2]), failed = tonumber(v[3]), validation_failures = tonumber(v[9] or '0'),
    completion_rate = total > 0 and tonumber(v[2]) / total or 1})
  return 'finished'
end
redis.call('HSET', state, 'status', 'active')
-- Loaded in full: the run lives until it finishes (then for the retention period).
for k = 1, #KEYS do redis.call('PERSIST', KEYS[k]) end
return 'active'
