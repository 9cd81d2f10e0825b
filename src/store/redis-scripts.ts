/**
 * The Redis store's operations as Lua scripts: each runs atomically in Redis, so a batch and all
 * its indexes change together or not at all, as one SQLite transaction would. Keys are built
 * inside the scripts from the prefix (ARGV[1]), so the store's data lives in one Redis (not a
 * Redis Cluster, whose slots would need every key of a script named up front).
 *
 * Layout under the prefix `P`:
 * - `P:seq` the last batch key (pk); `P:b:<pk>` a batch's fields (hash); `P:ids:<owner>` an
 *   owner's batch ids to pks (hash); `P:any:<batchId>` every owner's pk of a batch id, oldest
 *   first (sorted set);
 * - `P:in:<pk>` the inputs, one blob; `P:meta:<pk>` each item's request id and shape (JSON);
 *   `P:r:<pk>` outcomes by item index, written once (hash); `P:s:<pk>` index runs handed to a
 *   thread (set of `lo:hi`);
 * - lists newest first, sorted sets scored by creation time with zero-padded pks as members (so
 *   equal times order by pk): `P:l:all`, `P:l:o:<owner>`, `P:l:s:<status>`, `P:l:os:<status>:<owner>`;
 *   `P:ended` ended batches by end time, for purges; `P:settings` (hash); `P:pending` the items
 *   of every batch without an outcome (what admission counts over the cluster);
 * - per priority class `P:items:<class>` the items ever stored and `P:done:<class>` those with an
 *   outcome; a batch's `items_before` is its class's `P:items` when it was stored. The backlog
 *   ahead of a batch is read from these in constant time (see BACKLOG).
 */
import { FIELDS } from "./redis-rows.js";

/** Shared Lua: a pk as an index member, and moving a batch between status indexes. */
const COMMON = `
local function member(pk) return string.format('%016d', tonumber(pk)) end
local function move(p, pk, from, to, owner, created)
  if from == to then return end
  local m = member(pk)
  if from then
    redis.call('ZREM', p .. ':l:s:' .. from, m)
    redis.call('ZREM', p .. ':l:os:' .. from .. ':' .. owner, m)
  end
  redis.call('ZADD', p .. ':l:s:' .. to, created, m)
  redis.call('ZADD', p .. ':l:os:' .. to .. ':' .. owner, created, m)
end
`;

/**
 * Creates a batch unless (owner, batch id) exists. ARGV: prefix, owner, batchId, modelId,
 * priority, timeoutMs, createdAt, deadline, total, metadata, payloadHash ('' for none), inputs,
 * items JSON, outputs JSON ('' for none). Returns {created (0|1), pk}.
 */
export const CREATE_BATCH = `${COMMON}
local p, owner, id = ARGV[1], ARGV[2], ARGV[3]
local existing = redis.call('HGET', p .. ':ids:' .. owner, id)
if existing then return {0, tonumber(existing)} end
local pk = redis.call('INCR', p .. ':seq')
local created = tonumber(ARGV[7])
local m = member(pk)
local total = tonumber(ARGV[9])
local before = redis.call('INCRBY', p .. ':items:' .. ARGV[5], total) - total
redis.call('HSET', p .. ':ids:' .. owner, id, pk)
redis.call('HSET', p .. ':b:' .. pk, 'owner', owner, 'batch_id', id, 'model_id', ARGV[4],
  'priority', ARGV[5], 'status', 'queued', 'error', '', 'error_code', '', 'timeout_ms', ARGV[6],
  'created_at', ARGV[7], 'deadline', ARGV[8], 'started_at', '', 'completed_at', '',
  'total', ARGV[9], 'succeeded', 0, 'failed', 0, 'metadata', ARGV[10], 'payload_hash', ARGV[11],
  'items_before', before, 'outputs', ARGV[14])
redis.call('SET', p .. ':in:' .. pk, ARGV[12])
redis.call('SET', p .. ':meta:' .. pk, ARGV[13])
redis.call('ZADD', p .. ':any:' .. id, created, m)
redis.call('ZADD', p .. ':l:all', created, m)
redis.call('ZADD', p .. ':l:o:' .. owner, created, m)
move(p, pk, false, 'queued', owner, created)
redis.call('INCRBY', p .. ':pending', total)
return {1, pk}
`;

/**
 * Writes item outcomes (first one wins), batch states and started runs, by the rule of
 * `nextBatchState` (`src/engine/job-store.ts`): nothing is written for a batch that has ended.
 * ARGV: prefix, then n and n x (pk, index, outcome blob, error code or ''), then m and m x (pk,
 * status, error, errorCode, startedAt, completedAt, node) ('' for null), then k and k x (pk, 'lo:hi').
 * Counters follow the outcomes written; a batch keeps the index and code of its first failed item.
 * Returns, per batch state written, the batch's {@link FIELDS} after the write, pk first (batches
 * that no longer exist are left out).
 */
export const SAVE = `${COMMON}
local p = ARGV[1]
local at = 2
local open = {}
local function isopen(pk)
  local o = open[pk]
  if o == nil then
    local st = redis.call('HGET', p .. ':b:' .. pk, 'status')
    o = st ~= false and st ~= 'completed' and st ~= 'failed' and st ~= 'cancelled'
    open[pk] = o
  end
  return o
end
local counts = {}
local n = tonumber(ARGV[at]); at = at + 1
for _ = 1, n do
  local pk, index, blob, code = ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3]
  at = at + 4
  if isopen(pk) and redis.call('HSETNX', p .. ':r:' .. pk, index, blob) == 1 then
    local c = counts[pk] or {0, 0}
    if code == '' then c[1] = c[1] + 1 else
      c[2] = c[2] + 1
      local key = p .. ':b:' .. pk
      local first = redis.call('HGET', key, 'first_error_idx')
      if not first or tonumber(index) < tonumber(first) then
        redis.call('HSET', key, 'first_error_idx', index, 'first_error_code', code)
      end
    end
    counts[pk] = c
  end
end
for pk, c in pairs(counts) do
  redis.call('HINCRBY', p .. ':b:' .. pk, 'succeeded', c[1])
  redis.call('HINCRBY', p .. ':b:' .. pk, 'failed', c[2])
  redis.call('DECRBY', p .. ':pending', c[1] + c[2])
  local class = redis.call('HGET', p .. ':b:' .. pk, 'priority')
  redis.call('INCRBY', p .. ':done:' .. class, c[1] + c[2])
end
local out = {}
local m = tonumber(ARGV[at]); at = at + 1
for _ = 1, m do
  local pk, status, err, code, started, completed, node =
    ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3], ARGV[at + 4], ARGV[at + 5], ARGV[at + 6]
  at = at + 7
  local key = p .. ':b:' .. pk
  if isopen(pk) then
    local f = redis.call('HMGET', key, 'status', 'total', 'succeeded', 'failed', 'started_at',
      'first_error_code', 'owner', 'created_at')
    local old, total, ok, bad = f[1], tonumber(f[2]), tonumber(f[3]), tonumber(f[4])
    if started == '' then started = f[5] end
    if status ~= 'completed' and status ~= 'failed' and status ~= 'cancelled' then
      err, code, completed = '', '', ''
      if status == 'queued' and old ~= 'queued' then status = old end
    elseif ok == total then
      status, err, code = 'completed', '', ''
    elseif status == 'completed' and bad > 0 then
      status, code, err = 'failed', f[6] or 'INTERNAL', bad .. ' of ' .. total .. ' items failed'
    end
    redis.call('HSET', key, 'status', status, 'error', err, 'error_code', code,
      'started_at', started, 'completed_at', completed)
    if node ~= '' then redis.call('HSET', key, 'node', node) end
    move(p, pk, old, status, f[7], tonumber(f[8]))
    if completed ~= '' then redis.call('ZADD', p .. ':ended', tonumber(completed), member(pk)) end
  end
  if redis.call('EXISTS', key) == 1 then
    local row = redis.call('HMGET', key, ${FIELDS.map((f) => `'${f}'`).join(", ")})
    table.insert(row, 1, pk)
    out[#out + 1] = row
  end
end
local k = tonumber(ARGV[at]); at = at + 1
for _ = 1, k do
  if isopen(ARGV[at]) then
    redis.call('SADD', p .. ':s:' .. ARGV[at], ARGV[at + 1])
  end
  at = at + 2
end
return out
`;

/**
 * The work a batch waits behind. ARGV: prefix, pk, then the priority classes. Returns {} when the
 * batch does not exist, else the items without an outcome of each class in ARGV order, the
 * batch's own excluded, then the items of its own class stored before it and not yet done.
 * Outcomes are counted per class, not per batch, so when a class's items end out of their stored
 * order the last figure is an estimate, never above the class's backlog.
 */
export const BACKLOG = `
local p, pk = ARGV[1], ARGV[2]
local f = redis.call('HMGET', p .. ':b:' .. pk, 'priority', 'items_before', 'total', 'succeeded', 'failed')
if not f[1] then return {} end
local own = tonumber(f[3]) - tonumber(f[4]) - tonumber(f[5])
local out = {}
local ahead = 0
for i = 3, #ARGV do
  local class = ARGV[i]
  local items = tonumber(redis.call('GET', p .. ':items:' .. class) or '0')
  local done = tonumber(redis.call('GET', p .. ':done:' .. class) or '0')
  local pending = math.max(0, items - done)
  if class == f[1] then
    pending = math.max(0, pending - own)
    ahead = math.min(pending, math.max(0, tonumber(f[2] or '0') - done))
  end
  out[#out + 1] = pending
end
out[#out + 1] = ahead
return out
`;

/**
 * One page of an index, newest first, from a cursor. ARGV: index key, cursor time ('' for the
 * start), cursor pk member ('' for none), count. Members at the cursor's time with a pk not below
 * it are skipped (they were on earlier pages). Returns members.
 */
export const PAGE = `
local key, time, after, count = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local out = {}
local max = time == '' and '+inf' or time
local offset = 0
while #out < count do
  local chunk = redis.call('ZREVRANGEBYSCORE', key, max, '-inf', 'WITHSCORES', 'LIMIT', offset, count + 64)
  if #chunk == 0 then break end
  for i = 1, #chunk, 2 do
    local m, score = chunk[i], chunk[i + 1]
    if not (after ~= '' and tonumber(score) == tonumber(time) and m >= after) then
      out[#out + 1] = m
      if #out == count then break end
    end
  end
  offset = offset + #chunk / 2
end
return out
`;

/**
 * Deletes at most ARGV[3] batches that ended before ARGV[2] (ARGV[1]: prefix), oldest first,
 * with everything they own and their index entries. Returns how many.
 */
export const PURGE = `${COMMON}
local p, before, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
local ended = redis.call('ZRANGEBYSCORE', p .. ':ended', '-inf', '(' .. before, 'LIMIT', 0, limit)
for _, m in ipairs(ended) do
  local pk = tostring(tonumber(m))
  local key = p .. ':b:' .. pk
  local f = redis.call('HMGET', key, 'owner', 'batch_id', 'status')
  if f[1] then
    redis.call('HDEL', p .. ':ids:' .. f[1], f[2])
    redis.call('ZREM', p .. ':any:' .. f[2], m)
    redis.call('ZREM', p .. ':l:o:' .. f[1], m)
    redis.call('ZREM', p .. ':l:s:' .. f[3], m)
    redis.call('ZREM', p .. ':l:os:' .. f[3] .. ':' .. f[1], m)
  end
  redis.call('ZREM', p .. ':l:all', m)
  redis.call('DEL', key, p .. ':in:' .. pk, p .. ':meta:' .. pk, p .. ':r:' .. pk, p .. ':s:' .. pk)
  redis.call('ZREM', p .. ':ended', m)
end
return #ended
`;
