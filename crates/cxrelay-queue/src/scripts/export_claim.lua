-- export_claim: takes the polled export executions that are due, pushing each one's next poll
-- out by the interval so another worker does not poll it too.
-- KEYS[1] due polls  NS:export-polls:{t:TENANT} (sorted set: run id → next poll, ms)
-- ARGV[1] now (ms), ARGV[2] interval (ms), ARGV[3] most to take.
-- Returns the run ids taken.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local next_at = tonumber(ARGV[1]) + tonumber(ARGV[2])
for _, id in ipairs(due) do
  redis.call('ZADD', KEYS[1], 'XX', next_at, id)
end
return due
