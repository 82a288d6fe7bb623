-- enqueue: append one chunk of items to a run, atomically, skipping indexes already enqueued.
-- KEYS[1] state hash       NS:{run:ID}:state
-- KEYS[2] items stream     NS:{run:ID}:items
-- KEYS[3] invalid hash     NS:{run:ID}:invalid   index -> reason
-- KEYS[4] finished bitmap  NS:{run:ID}:finished  bit per index: succeeded, failed or invalid
-- ARGV[1] index of the chunk's first item, ARGV[2] item count, ARGV[3] loading TTL (s: each
-- chunk extends the life of a run still loading, see create_run.lua), then per item two values:
-- kind ('v' valid | 'x' invalid) and data (item JSON | reason).
-- A chunk is all-or-nothing, so the run always records exactly what was accepted; a re-run
-- with the same run id skips indexes below next_index, so nothing is enqueued twice.
-- Returns: {accepted, invalid, skipped}
local state, items, invalid, finished = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local first, n = tonumber(ARGV[1]), tonumber(ARGV[2])
local next_index = tonumber(redis.call('HGET', state, 'next_index') or '0')
if first > next_index then
  return redis.error_reply('ERR chunk starts at ' .. first .. ' but the run expects index ' .. next_index)
end
local accepted, bad, skipped = 0, 0, 0
for k = 0, n - 1 do
  local index = first + k
  local kind, data = ARGV[4 + 2 * k], ARGV[5 + 2 * k]
  if index < next_index then
    skipped = skipped + 1
  elseif kind == 'v' then
    -- No attempts field: a fresh entry has none (readers default it to 0), which keeps the
    -- entry small; its fields match the stream's master entry, so their names are not stored.
    redis.call('XADD', items, '*', 'i', index, 'd', data)
    accepted = accepted + 1
  else
    redis.call('HSET', invalid, index, data)
    redis.call('SETBIT', finished, index, '1')
    bad = bad + 1
  end
end
if accepted + bad > 0 then
  redis.call('HINCRBY', state, 'accepted', accepted)
  redis.call('HINCRBY', state, 'invalid', bad)
  redis.call('HSET', state, 'next_index', first + n)
end
if redis.call('HGET', state, 'status') == 'loading' then
  for _, key in ipairs(KEYS) do redis.call('EXPIRE', key, tonumber(ARGV[3])) end
end
return {accepted, bad, skipped}
