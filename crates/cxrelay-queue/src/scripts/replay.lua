-- replay: put one batch of failed items back in the queue, with a fresh attempt budget and their
-- history kept; every other item asked for is refused with why. Atomic per batch.
-- KEYS: every key of the run, in RunKeys::all() order; used here:
--   [1] items stream   [2] done bitmap   [3] finished bitmap   [4] failed hash   [5] payloads hash
--   [7] failstats hash [10] invalid hash [11] redeliveries hash [12] audit stream [13] outbox
--   [15] state hash
-- ARGV[1] '1' = dry run (nothing is written; the answer is what a real replay would do),
-- ARGV[2] audit stream length, ARGV[3] who, ARGV[4] why, ARGV[5] the selection as the operator
-- gave it, ARGV[6] '1' = give the items a new Idempotency-Key (a replay generation), ARGV[7]
-- webhook event types wanted (the first batch of a replay asks for replay.started), ARGV[8] items
-- the whole replay asks for, ARGV[9] the "other" reason, then 5 values per item asked for: index,
-- failure class, status key (HTTP status or class), reason key — the failstats fields its failure
-- was counted under, so the counts stay exact — and when that failure was recorded (`at_ms` of
-- the failed summary the caller read). An item whose failure is no longer that one (another
-- replay ran it and it failed again meanwhile) is refused, so no counter is taken from a reason
-- it is not counted under.
-- A replayed item becomes a fresh stream entry (no attempt counts); it leaves the failed and
-- payloads hashes (the entry carries its payload; a new failure stores it again) and the
-- finished bitmap, so the run is active again until it finishes again.
-- Returns {n, index1, …, indexN, refused_index1, why1, …}.
local items, done, finished, failed, payloads = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local failstats, invalid, redeliveries, audit, outbox, state = KEYS[7], KEYS[10], KEYS[11], KEYS[12], KEYS[13], KEYS[#KEYS]
-- ARGV[6]: '0' same key, '1' a new key generation (the first batch of a replay), '2' the
-- generation the replay's first batch drew.
local dry, audit_len, who, why, selection, new_key = ARGV[1] == '1', ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6] ~= '0'
local v = redis.call('HMGET', state, 'status', 'next_index', 'high_water', 'replay_gen')
local status, next_index, hw = v[1], tonumber(v[2] or '0'), tonumber(v[3] or '0')
if not status then return redis.error_reply('ERR run does not exist') end
if status == 'cancelled' then return redis.error_reply('ERR the run was cancelled; a cancelled run is not replayed') end
local gen = tonumber(v[4] or '0')
if ARGV[6] == '1' and not dry then gen = gen + 1 end

-- Takes one away from a failstats counter (removed at zero).
local function uncount(field)
  if redis.call('HINCRBY', failstats, field, -1) <= 0 then redis.call('HDEL', failstats, field) end
end

local replayed, refused = {}, {}
local lowest = nil
local other_reason = ARGV[9]
for k = 10, #ARGV, 5 do
  local index, class, status_key, reason, failed_at = ARGV[k], ARGV[k + 1], ARGV[k + 2], ARGV[k + 3], tonumber(ARGV[k + 4])
  local n = tonumber(index)
  local payload = redis.call('HGET', payloads, index)
  if n >= next_index then
    refused[#refused + 1] = index
    refused[#refused + 1] = 'no such item: the run has ' .. next_index .. ' items (indexes 0 to ' .. (next_index - 1) .. ')'
  elseif redis.call('GETBIT', done, index) == 1 then
    refused[#refused + 1] = index
    refused[#refused + 1] = 'it succeeded: a success is never sent again'
  elseif redis.call('HEXISTS', invalid, index) == 1 then
    refused[#refused + 1] = index
    refused[#refused + 1] = 'it was rejected by validation and never queued: fix the input and enqueue it again'
  elseif redis.call('HEXISTS', failed, index) == 0 then
    refused[#refused + 1] = index
    refused[#refused + 1] = 'it has not failed: it is pending or in flight'
  elseif tonumber(cjson.decode(redis.call('HGET', failed, index))['at_ms']) ~= failed_at then
    refused[#refused + 1] = index
    refused[#refused + 1] = 'it failed again while this replay was prepared: replay it again'
  elseif not payload then
    refused[#refused + 1] = index
    refused[#refused + 1] = 'its payload was not kept'
  else
    replayed[#replayed + 1] = index
    if not lowest or n < lowest then lowest = n end
    if not dry then
      -- Marked replayed, so the entry is not fresh: its success joins the item's history.
      if new_key then
        redis.call('XADD', items, '*', 'i', index, 'g', gen, 'r', '1', 'd', payload)
      else
        redis.call('XADD', items, '*', 'i', index, 'r', '1', 'd', payload)
      end
      redis.call('HDEL', failed, index)
      redis.call('HDEL', payloads, index)
      redis.call('HDEL', redeliveries, index)
      redis.call('SETBIT', finished, index, '0')
      uncount('c:' .. class)
      uncount('s:' .. status_key)
      -- A reason past the distinct-reason bound was counted under the "other" reason (ARGV[9]).
      if redis.call('HEXISTS', failstats, 'r:' .. reason) == 1 then uncount('r:' .. reason) else uncount('r:' .. other_reason) end
    end
  end
end

if not dry and #replayed > 0 then
  redis.call('HINCRBY', state, 'failed', -#replayed)
  redis.call('HINCRBY', state, 'replayed', #replayed)
  if new_key then redis.call('HSET', state, 'replay_gen', gen) end
  if lowest < hw then redis.call('HSET', state, 'high_water', lowest) end
  if status == 'finished' then
    -- Active again until the replayed items finish; it lives as long as an active run does.
    redis.call('HSET', state, 'status', 'active')
    redis.call('HDEL', state, 'finished_ms')
    for j = 1, #KEYS do redis.call('PERSIST', KEYS[j]) end
  end
  audit_event(audit, state, audit_len, {'type', 'replay', 'by', who, 'reason', why, 'selection', selection,
    'count', #replayed, 'first', replayed[1], 'last', replayed[#replayed], 'new_idempotency_key', new_key and '1' or '0'})
  local m = redis.call('HMGET', state, 'id', 'tenant')
  outbox_event(outbox, state, ARGV[7], 'replay.started', {run_id = m[1], tenant = m[2], by = who, reason = why,
    selection = selection, requested = tonumber(ARGV[8])})
end
local out = {#replayed}
for _, i in ipairs(replayed) do out[#out + 1] = i end
for _, x in ipairs(refused) do out[#out + 1] = x end
return out
