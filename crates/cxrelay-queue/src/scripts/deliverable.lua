-- deliverable (prelude, not a script of its own): prepended to fetch.lua and reclaim.lua by
-- scripts.rs, because a Redis script cannot call another.
-- Parses one stream entry's fields {i = index, a = attempts, t = 429s met, n = deferrals,
-- g = Idempotency-Key generation, r = 1 if replayed, d = item}; absent counts are 0. An entry whose item is already recorded as succeeded in the done bitmap is
-- acknowledged and deleted (a success is never POSTed again) and nil is returned; otherwise the
-- parsed fields.
local function deliverable(items, group, done, id, fields)
  local f = {}
  for k = 1, #fields, 2 do f[fields[k]] = fields[k + 1] end
  -- The index goes to GETBIT as the string it is (a Lua number would be printf-formatted).
  if f['i'] and redis.call('GETBIT', done, f['i']) == 1 then
    redis.call('XACK', items, group, id)
    redis.call('XDEL', items, id)
    return nil
  end
  return f
end

-- Appends one delivery {id, index, attempts, 429s, deferrals, item, key generation, replays} to a
-- reply (the generation is set on items replayed with a new Idempotency-Key; replays is 1 for an
-- item an operator replayed).
local function push_delivery(out, id, f)
  out[#out + 1] = id
  out[#out + 1] = f['i'] or '-1'
  out[#out + 1] = f['a'] or '0'
  out[#out + 1] = f['t'] or '0'
  out[#out + 1] = f['n'] or '0'
  out[#out + 1] = f['d'] or ''
  out[#out + 1] = f['g'] or '0'
  out[#out + 1] = f['r'] or '0'
end

