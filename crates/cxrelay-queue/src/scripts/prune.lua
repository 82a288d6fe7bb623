-- prune: remove the consumers of dead workers from a run's group, once idle and holding nothing.
-- KEYS[1] items stream  NS:{run:ID}:items  (consumer group ARGV[1])
-- ARGV: group, idle threshold (ms)
-- Every worker process reads under its own consumer name (host-pid-start), so a fleet that
-- restarts often would grow the group forever. A consumer idle longer than the threshold with
-- no pending entry is deleted; checking and deleting in one script means a consumer cannot take
-- an entry in between (DELCONSUMER would drop it). A live but idle worker loses nothing: its
-- next read creates its consumer again.
-- Returns the number of consumers removed.
local items, group, idle_ms = KEYS[1], ARGV[1], tonumber(ARGV[2])
if redis.call('EXISTS', items) == 0 then return 0 end
local removed = 0
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', items, group)) do
  local f = {}
  for k = 1, #c, 2 do f[c[k]] = c[k + 1] end
  if tonumber(f['pending']) == 0 and tonumber(f['idle']) > idle_ms then
    redis.call('XGROUP', 'DELCONSUMER', items, group, f['name'])
    removed = removed + 1
  end
end
return removed
