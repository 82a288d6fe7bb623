-- export_slot: the seed's rule for export submissions: one in flight per data action, and a
-- gap between two submissions for the same data action.
-- KEYS[1] slot of one data action  NS:export-slot:{t:TENANT}:ACTION (a string; absent = free)
-- ARGV[1] acquire | release, ARGV[2] holder token, ARGV[3] ms: the in-flight lease (acquire) or
-- the spacing to keep after this submission (release).
-- acquire returns 0 when the slot is taken for the caller, else the ms until it may be free (the
-- spacing left, or a short while when another submission is in flight).
-- release keeps the slot for the spacing when the caller still holds it; returns 1 if so.
local slot, mode, token, ms = KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3])
if mode == 'acquire' then
  if redis.call('SET', slot, token, 'NX', 'PX', ms) then return 0 end
  local left = redis.call('PTTL', slot)
  if left < 1 then left = 1 end
  -- In flight: its end is not known (the lease is only a bound), so look again soon.
  if redis.call('GET', slot) ~= 'spacing' and left > 250 then left = 250 end
  return left
end
if redis.call('GET', slot) ~= token then return 0 end
if ms > 0 then
  redis.call('SET', slot, 'spacing', 'PX', ms)
else
  redis.call('DEL', slot)
end
return 1
