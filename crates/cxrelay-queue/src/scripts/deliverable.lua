-- deliverable (prelude, not a script of its own): prepended to fetch.lua and reclaim.lua by
-- scripts.rs, because a Redis script cannot call another.
-- Parses one stream entry's fields {i = index, a = attempts, d = item}. An entry whose item is
-- already recorded as succeeded in the done bitmap is acknowledged and deleted (a success is never
-- POSTed again) and nil is returned; otherwise the parsed fields.
local function deliverable(items, group, done, id, fields)
  local f = {}
  for k = 1, #fields, 2 do f[fields[k]] = fields[k + 1] end
  if f['i'] and redis.call('GETBIT', done, tonumber(f['i'])) == 1 then
    redis.call('XACK', items, group, id)
    redis.call('XDEL', items, id)
    return nil
  end
  return f
end

