-- outbox_lock: take, or renew, the lease on delivering one outbox to one webhook endpoint.
-- KEYS[1] lock   NS:{run:ID}:outbox:lock:EP or NS:{brk:T}:whlock:EP (same slot as the outbox)
-- ARGV[1] holder (the process's consumer name), ARGV[2] lease ms
-- Returns 1 when the caller holds the lease now (taken or renewed), 0 when another process does.
-- Compare-and-set in one step: a holder whose lease lapsed and was taken never renews another's.
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if holder then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
