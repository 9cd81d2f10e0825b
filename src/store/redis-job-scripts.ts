/**
 * The Lua scripts of the jobs on Redis (`redis-job-data.ts` has the key layout): each change of a
 * job is one of them, so it is atomic across the nodes. ARGV[1] is the key prefix of the jobs.
 */

/** The Lua condition of a status `s` the job never leaves. */
const ENDED = "s == 'completed' or s == 'failed' or s == 'cancelled' or s == 'expired'";

/** ARGV: P, owner, jobId, model, priority, createdAt, expiresAt, callbackUrl, secret, keepMs. */
export const CREATE = `
local P = ARGV[1]
local existing = redis.call('HGET', P .. ':own:' .. ARGV[2], ARGV[3])
if existing then return {0, tonumber(existing)} end
local pk = redis.call('INCR', P .. ':seq')
redis.call('HSET', P .. ':own:' .. ARGV[2], ARGV[3], pk)
redis.call('HSET', P .. ':j:' .. pk, 'o', ARGV[2], 'id', ARGV[3], 'm', ARGV[4], 'p', ARGV[5],
  's', 'validating', 'c', ARGV[6], 'x', ARGV[7], 't', 0, 'd', 0, 'f', 0, 'i', 0, 'n', 0,
  'done', 0, 'cu', ARGV[8], 'cs', ARGV[9], 'k', ARGV[10])
redis.call('ZADD', P .. ':any:' .. ARGV[3], ARGV[6], pk)
redis.call('ZADD', P .. ':all', ARGV[6], pk)
redis.call('ZADD', P .. ':owner:' .. ARGV[2], ARGV[6], pk)
redis.call('ZADD', P .. ':uploading', ARGV[6], pk)
return {1, pk}`;

/** ARGV: P, pk, total, invalid, chunks, hash. */
export const SEAL = `
local k = ARGV[1] .. ':j:' .. ARGV[2]
if redis.call('HGET', k, 's') ~= 'validating' then return 0 end
redis.call('HSET', k, 's', 'queued', 't', ARGV[3], 'i', ARGV[4], 'n', ARGV[5], 'h', ARGV[6])
redis.call('SADD', ARGV[1] .. ':active', ARGV[2])
redis.call('ZREM', ARGV[1] .. ':uploading', ARGV[2])
return 1`;

/** ARGV: P, pk. */
export const DROP = `
local P, pk = ARGV[1], ARGV[2]
local k = P .. ':j:' .. pk
local owner, id = unpack(redis.call('HMGET', k, 'o', 'id'))
if not owner then return 0 end
redis.call('HDEL', P .. ':own:' .. owner, id)
redis.call('ZREM', P .. ':any:' .. id, pk)
redis.call('ZREM', P .. ':all', pk)
redis.call('ZREM', P .. ':owner:' .. owner, pk)
redis.call('ZREM', P .. ':ended', pk)
redis.call('SREM', P .. ':active', pk)
redis.call('ZREM', P .. ':uploading', pk)
redis.call('UNLINK', k, P .. ':l:' .. pk, P .. ':f:' .. pk, P .. ':o:' .. pk)
return 1`;

/** The job-state part of the scripts below: ARGV[3..] status, error, code, started, completed. */
const WRITE_STATE = `
local function write_state(P, pk, k, a)
  redis.call('HSET', k, 's', ARGV[a], 'e', ARGV[a + 1], 'ec', ARGV[a + 2], 'st', ARGV[a + 3],
    'ct', ARGV[a + 4])
  local s = ARGV[a]
  if ${ENDED} then
    redis.call('SREM', P .. ':active', pk)
    redis.call('ZADD', P .. ':ended', ARGV[a + 4], pk)
  else
    redis.call('SADD', P .. ':active', pk)
  end
end`;

/**
 * ARGV: P, pk, chunk, outcomes, status, error, code, started, completed, addCompleted, addFailed.
 * Returns {written, chunks done, chunks}.
 */
export const SAVE_CHUNK = `${WRITE_STATE}
local P, pk = ARGV[1], ARGV[2]
local k = P .. ':j:' .. pk
local s = redis.call('HGET', k, 's')
if (not s) or ${ENDED} then return {0, 0, 0} end
if redis.call('HSETNX', P .. ':o:' .. pk, ARGV[3], ARGV[4]) == 0 then return {0, 0, 0} end
write_state(P, pk, k, 5)
redis.call('HINCRBY', k, 'd', ARGV[10])
redis.call('HINCRBY', k, 'f', ARGV[11])
local done = redis.call('HINCRBY', k, 'done', 1)
return {1, done, tonumber(redis.call('HGET', k, 'n'))}`;

/** ARGV: P, pk, status, error, code, started, completed, addCompleted, addFailed. */
export const SAVE_JOB = `${WRITE_STATE}
local P, pk = ARGV[1], ARGV[2]
local k = P .. ':j:' .. pk
local s = redis.call('HGET', k, 's')
if (not s) or ${ENDED} then return 0 end
write_state(P, pk, k, 3)
redis.call('HINCRBY', k, 'd', ARGV[8])
redis.call('HINCRBY', k, 'f', ARGV[9])
return 1`;

/** ARGV: P, pk, status, error, code, completed, started. Returns 1 when it ended the job. */
export const END = `
local P, pk = ARGV[1], ARGV[2]
local k = P .. ':j:' .. pk
local s = redis.call('HGET', k, 's')
if (not s) or ${ENDED} then return 0 end
local t, d, i = unpack(redis.call('HMGET', k, 't', 'd', 'i'))
redis.call('HSET', k, 's', ARGV[3], 'e', ARGV[4], 'ec', ARGV[5], 'ct', ARGV[6],
  'f', tonumber(t) - tonumber(d) - tonumber(i))
if redis.call('HGET', k, 'st') == '' or not redis.call('HGET', k, 'st') then
  redis.call('HSET', k, 'st', ARGV[7])
end
redis.call('SREM', P .. ':active', pk)
redis.call('ZADD', P .. ':ended', ARGV[6], pk)
return 1`;
