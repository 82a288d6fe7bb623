-- fetch: promote due retries, then deliver up to COUNT new items to one consumer.
-- KEYS[1] state hash      cxr:{run:ID}:state
-- KEYS[2] items stream    cxr:{run:ID}:items
-- KEYS[3] done bitmap     cxr:{run:ID}:done      bit per index that succeeded
-- KEYS[4] delayed zset    cxr:{run:ID}:delayed   member "index|attempts|item", score = due ms
-- ARGV: group, consumer, count, promote limit
-- Returns {status, e1_id, e1_index, e1_attempts, e1_item, e2_id, ...}; status is the run's
-- status ('active' delivers; others deliver nothing). Items already recorded as succeeded are
-- acknowledged and dropped here, so a success is never POSTed again.
local state, items, done, delayed = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local group, consumer, count, limit = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local status = redis.call('HGET', state, 'status')
if status ~= 'active' then return {status or 'missing'} end
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
-- Bounded promotion: at most `limit` per call, so 50,000 retries falling due at once are moved
-- a slice at a time and no call unpacks an unbounded list.
local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, limit)
for _, member in ipairs(due) do
  local p1 = string.find(member, '|', 1, true)
  local p2 = string.find(member, '|', p1 + 1, true)
  redis.call('XADD', items, '*', 'i', string.sub(member, 1, p1 - 1), 'a', string.sub(member, p1 + 1, p2 - 1), 'd', string.sub(member, p2 + 1))
  redis.call('ZREM', delayed, member)
end
local out = {status}
local reply = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', count, 'STREAMS', items, '>')
if not reply then return out end
for _, entry in ipairs(reply[1][2]) do
  local id = entry[1]
  local f = deliverable(items, group, done, id, entry[2])
  if f then
    out[#out + 1] = id
    out[#out + 1] = f['i'] or '-1'
    out[#out + 1] = f['a'] or '0'
    out[#out + 1] = f['d'] or ''
  end
end
return out
