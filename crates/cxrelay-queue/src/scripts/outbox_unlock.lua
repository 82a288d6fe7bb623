-- outbox_unlock: give a delivery lease back, only if the caller still holds it.
-- KEYS[1] lock (see outbox_lock.lua)
-- ARGV[1] holder
-- Returns 1 when released, 0 when it was not the caller's (lapsed and taken, or gone).
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
