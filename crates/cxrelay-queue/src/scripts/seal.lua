-- seal: the producer read its whole input; make the run visible to workers.
-- KEYS: every key of the run, in RunKeys::all() order (all of them expire with the run):
--   [1] items  [2] done  [3] finished bitmap  [4] failed  [5] payloads  [6] history
--   [7] failstats  [8] latency  [9] delayed  [10] invalid  [11] redeliveries  [12] audit
--   [13] state hash (last)
-- ARGV: beyond_max (items past --max-items), break condition ('' = none), retention seconds.
-- Returns: the run's status after sealing.
local finished, state = KEYS[3], KEYS[#KEYS]
local status = redis.call('HGET', state, 'status')
if not status then return redis.error_reply('ERR run does not exist') end
redis.call('HSET', state, 'beyond_max', ARGV[1])
if ARGV[2] ~= '' then redis.call('HSET', state, 'break', ARGV[2]) end
if status ~= 'loading' then return status end
local v = redis.call('HMGET', state, 'accepted', 'succeeded', 'failed', 'next_index', 'high_water')
local hw, next_index = tonumber(v[5]), tonumber(v[4])
while hw < next_index and redis.call('GETBIT', finished, hw) == 1 do hw = hw + 1 end
redis.call('HSET', state, 'high_water', hw)
if tonumber(v[1]) - tonumber(v[2]) - tonumber(v[3]) == 0 then
  local t = redis.call('TIME')
  redis.call('HSET', state, 'status', 'finished', 'finished_ms', t[1] * 1000 + math.floor(t[2] / 1000))
  for k = 1, #KEYS do redis.call('EXPIRE', KEYS[k], tonumber(ARGV[3])) end
  return 'finished'
end
redis.call('HSET', state, 'status', 'active')
-- Loaded in full: the run lives until it finishes (then for the retention period).
for k = 1, #KEYS do redis.call('PERSIST', KEYS[k]) end
return 'active'
