-- create_run: create a run's state hash and consumer group, or find the existing run.
-- KEYS[1] state hash   NS:{run:ID}:state
-- KEYS[2] items stream NS:{run:ID}:items
-- ARGV: id, action, source, group, max_items ('' = none), tenant, nonce (a fresh random token:
--       part of every Idempotency-Key of this incarnation of the run), idempotency field ('' = none),
--       loading TTL (s): a run still loading expires unless a chunk or a seal comes within it, so a
--       producer killed mid-load leaves nothing that lives forever, failure-rate guard: percent
--       ('' = none) and window (finished items), then pairs of extra fields set at creation (a
--       run's kind and an export's parameters, set before any worker can see the run)
-- Returns: {created (1|0), status, action, next_index, tenant}
local state, items = KEYS[1], KEYS[2]
local loading_ttl = tonumber(ARGV[9])
if redis.call('EXISTS', state) == 1 then
  local v = redis.call('HMGET', state, 'status', 'action', 'next_index', 'tenant')
  if v[1] == 'loading' then
    redis.call('EXPIRE', state, loading_ttl)
    redis.call('EXPIRE', items, loading_ttl)
  end
  return {0, v[1] or '', v[2] or '', tonumber(v[3] or '0'), v[4] or 'default'}
end
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('HSET', state, 'id', ARGV[1], 'action', ARGV[2], 'source', ARGV[3], 'status', 'loading',
  'tenant', ARGV[6], 'nonce', ARGV[7], 'idem_field', ARGV[8],
  'created_ms', now, 'accepted', 0, 'invalid', 0, 'succeeded', 0, 'failed', 0, 'retries', 0,
  'high_water', 0, 'next_index', 0, 'beyond_max', 0)
if ARGV[5] ~= '' then redis.call('HSET', state, 'max_items', ARGV[5]) end
if ARGV[10] ~= '' then redis.call('HSET', state, 'guard_rate', ARGV[10], 'guard_window', ARGV[11]) end
for i = 12, #ARGV - 1, 2 do redis.call('HSET', state, ARGV[i], ARGV[i + 1]) end
if redis.call('EXISTS', items) == 0 then
  redis.call('XGROUP', 'CREATE', items, ARGV[4], '0', 'MKSTREAM')
end
redis.call('EXPIRE', state, loading_ttl)
redis.call('EXPIRE', items, loading_ttl)
return {1, 'loading', ARGV[2], 0, ARGV[6]}
