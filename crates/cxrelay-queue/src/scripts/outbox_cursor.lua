-- outbox_cursor: store how far one endpoint got in one outbox, only while the caller holds the
-- delivery lease (a process that lost it must not move the cursor back or forth).
-- KEYS[1] lock (see outbox_lock.lua)
-- KEYS[2] cursor hash: a run's state hash NS:{run:ID}:state, or a tenant's breaker cursor hash
--         NS:{brk:T}:webhooks
-- ARGV[1] holder, ARGV[2] endpoint id, ARGV[3] last delivered entry id, ARGV[4] failed tries,
-- ARGV[5] next attempt (ms), ARGV[6] '1' = only if the hash exists (a run's state: a run that
-- expired is not brought back as a lone hash), ARGV[7] events passed ('' = not counted)
-- Returns 1 when stored, 0 when not (lease lost, or the run is gone).
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[6] == '1' and redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
redis.call('HSET', KEYS[2], 'wh:' .. ARGV[2], ARGV[3], 'wht:' .. ARGV[2], ARGV[4], 'whn:' .. ARGV[2], ARGV[5])
if ARGV[7] ~= '' then redis.call('HSET', KEYS[2], 'whp:' .. ARGV[2], ARGV[7]) end
return 1
