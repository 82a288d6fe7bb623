-- reclaim: take over items whose lease expired (their worker died or stalled).
-- KEYS[1] state hash          NS:{run:ID}:state
-- KEYS[2] items stream        NS:{run:ID}:items
-- KEYS[3] done bitmap         NS:{run:ID}:done
-- KEYS[4] redeliveries hash   NS:{run:ID}:redeliveries   index -> times reclaimed
-- ARGV: group, consumer, lease ms, count
-- Returns {e1_id, e1_index, e1_attempts, e1_429s, e1_deferrals, e1_item, e1_redeliveries, ...}.
-- Recovery goes by idle time alone (XAUTOCLAIM), so it needs no worker names and works on any
-- surviving worker.
local state, items, done, redeliveries = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local group, consumer, lease, count = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
if redis.call('HGET', state, 'status') ~= 'active' then return {} end
local reply = redis.call('XAUTOCLAIM', items, group, consumer, lease, '0-0', 'COUNT', count)
local out = {}
for _, entry in ipairs(reply[2]) do
  local id, fields = entry[1], entry[2]
  -- A deleted entry still pending comes back without fields: nothing to deliver.
  local f = fields and deliverable(items, group, done, id, fields)
  if f then
    push_delivery(out, id, f)
    out[#out + 1] = redis.call('HINCRBY', redeliveries, f['i'] or '-1', 1)
  end
end
return out
