-- fetch: promote due retries, then deliver up to COUNT new items to one consumer.
-- KEYS[1] state hash      NS:{run:ID}:state
-- KEYS[2] items stream    NS:{run:ID}:items
-- KEYS[3] done bitmap     NS:{run:ID}:done      bit per index that succeeded
-- KEYS[4] delayed zset    NS:{run:ID}:delayed   member "index|attempts|429s|deferrals|generation|replays|item", score = due ms
-- ARGV: group, consumer, count, promote limit (members), promote limit (bytes)
-- Returns {status, nonce, e1_id, e1_index, e1_attempts, e1_429s, e1_deferrals, e1_item, e2_id, ...};
-- status is the run's status ('active' delivers; others deliver nothing); nonce tells a worker
-- whose cached view of the run is from an earlier incarnation of the same run id. Items already
-- recorded as succeeded are acknowledged and dropped here, so a success is never POSTed again.
local state, items, done, delayed = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local group, consumer, count, limit, max_bytes = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local v = redis.call('HMGET', state, 'status', 'nonce')
local status, nonce = v[1], v[2] or ''
if status ~= 'active' then return {status or 'missing', nonce} end
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
-- Bounded promotion: at most `limit` members and about `max_bytes` per call, read in small pages,
-- so 50,000 retries falling due at once (or 500 of 256 KB each) are moved a slice at a time and
-- no call holds an unbounded list in memory.
local promoted, bytes = 0, 0
while promoted < limit and bytes < max_bytes do
  local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, math.min(50, limit - promoted))
  if #due == 0 then break end
  for _, member in ipairs(due) do
    local p = {}
    local from = 1
    for k = 1, 6 do
      local bar = string.find(member, '|', from, true)
      p[k] = string.sub(member, from, bar - 1)
      from = bar + 1
    end
    redis.call('XADD', items, '*', 'i', p[1], 'a', p[2], 't', p[3], 'n', p[4], 'g', p[5], 'r', p[6], 'd', string.sub(member, from))
    redis.call('ZREM', delayed, member)
    promoted = promoted + 1
    bytes = bytes + #member
    if bytes >= max_bytes then break end
  end
end
local out = {status, nonce}
local reply = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', count, 'STREAMS', items, '>')
if not reply then return out end
for _, entry in ipairs(reply[1][2]) do
  local f = deliverable(items, group, done, entry[1], entry[2])
  if f then push_delivery(out, entry[1], f) end
end
return out
