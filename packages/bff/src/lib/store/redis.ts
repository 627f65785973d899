// Redis session store for several BFF instances. Layout under `prefix`:
//   s:<id>   hash { d: session data, t: encrypted tokens, i: JSON list of index keys }  (PEXPIRE = TTL)
//   u:<h>    set of session ids of one (iss, sub);  x:<h> set of ids of one (iss, sid)
//   o:<key>  replay marks (SET NX EX)   l:<key> locks (SET NX PX)
//   r:<key>  rate-limit buckets, hash { t: tokens, a: last update in ms of Redis's clock }  (PEXPIRE)
// Multi-key updates run as Lua scripts, so a write never leaves a session half-indexed and a token
// write never resurrects a destroyed session.
import { createHash, randomBytes } from 'node:crypto';
import { sha256 } from '../crypto.js';
import { BffError } from '../errors.js';
import type { RateDecision, SessionMatch, SessionStore, StoredSession, StoreLock } from './types.js';

/** The part of a node-redis v5 client the store uses (`createClient()` satisfies it). */
export interface RedisClientLike {
  readonly isReady: boolean;
  sendCommand(args: readonly string[], options?: { timeout?: number }): Promise<unknown>;
}

/** Options of {@link createRedisStore}. */
export interface RedisStoreOptions {
  /** A connected node-redis client. The store never closes it. */
  client: RedisClientLike;
  /** Key prefix. Default `gatehouse:bff:`. */
  prefix?: string;
  /** Per-command timeout in seconds; a slower answer counts as "Redis unavailable". Default 2. */
  commandTimeout?: number;
}

const SET_SESSION = `
if ARGV[7] == '1' and redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'd', ARGV[1], 'i', ARGV[2])
if ARGV[5] == '1' then redis.call('HSET', KEYS[1], 't', ARGV[6]) end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
local ttl = tonumber(ARGV[3])
for i = 2, #KEYS do
  redis.call('SADD', KEYS[i], ARGV[4])
  if redis.call('PTTL', KEYS[i]) < ttl then redis.call('PEXPIRE', KEYS[i], ttl) end
end
return 1`;

// KEYS[2] (optional) is a refresh lock: the write happens only while ARGV[2] still holds it (fencing).
const SET_TOKENS = `
if #KEYS == 2 and redis.call('GET', KEYS[2]) ~= ARGV[2] then return 0 end
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 't', ARGV[1])
  return 1
end
return 0`;

const DESTROY = `
local idx = redis.call('HGET', KEYS[1], 'i')
redis.call('DEL', KEYS[1])
if idx then
  for _, key in ipairs(cjson.decode(idx)) do redis.call('SREM', key, ARGV[1]) end
end
return 1`;

const FIND = `
local ids
if #KEYS == 2 then ids = redis.call('SINTER', KEYS[1], KEYS[2]) else ids = redis.call('SMEMBERS', KEYS[1]) end
local out = {}
for _, id in ipairs(ids) do
  if redis.call('EXISTS', ARGV[1] .. id) == 1 then
    table.insert(out, id)
  else
    for i = 1, #KEYS do redis.call('SREM', KEYS[i], id) end
  end
end
return out`;

const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

const EXTEND = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;
// Token bucket on Redis's own clock (TIME), so instances with skewed clocks share one bucket. The key
// expires once the bucket would be full again: an absent bucket reads as full.
const CONSUME_RATE = `
if redis.replicate_commands then redis.replicate_commands() end
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local bucket = redis.call('HMGET', KEYS[1], 't', 'a')
local tokens = tonumber(bucket[1])
local at = tonumber(bucket[2])
if tokens == nil or at == nil then
  tokens = capacity
else
  local elapsed = now - at
  if elapsed < 0 then elapsed = 0 end
  tokens = math.min(capacity, tokens + elapsed * rate / 1000)
end
local allowed = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'a', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - tokens) * 1000 / rate) + 1000)
return { allowed, wait }`;
const CONSUME_RATE_SHA = createHash('sha1').update(CONSUME_RATE).digest('hex');

function commandFailed(err: unknown): BffError {
  return new BffError('ERR_BFF_STORE_UNAVAILABLE', 'Redis command failed', { cause: err, retryAfter: 1 });
}

function rejectTimedOut(reject: (err: BffError) => void): void {
  reject(new BffError('ERR_BFF_STORE_UNAVAILABLE', 'Redis command timed out', { retryAfter: 1 }));
}

/** An HMGET d t reply as a stored session (undefined when the session is gone). */
function toStoredSession(reply: unknown): StoredSession | undefined {
  const fields = reply as (string | null)[];
  const data = fields[0];
  if (typeof data !== 'string') return undefined;
  const tokens = fields[1];
  return { data, tokens: typeof tokens === 'string' ? tokens : undefined };
}

/** The CONSUME_RATE script's `{ allowed, wait ms }` as a decision. */
function toRateDecision(reply: unknown): RateDecision {
  const values = reply as [number, number];
  const allowed = values[0] === 1;
  return { allowed, retryAfter: allowed ? 0 : values[1] / 1000 };
}

/** Creates a Redis-backed session store on a node-redis v5 client the host connects and closes. */
export function createRedisStore(options: RedisStoreOptions): SessionStore {
  const client = options?.client;
  if (!client || typeof client.sendCommand !== 'function') {
    throw new TypeError(
      'createRedisStore: `client` must be a node-redis client (createClient({ url }) then connect())',
    );
  }
  const prefix = options.prefix ?? 'gatehouse:bff:';
  if (typeof prefix !== 'string') throw new TypeError('createRedisStore: `prefix` must be a string');
  const timeout = Math.round((options.commandTimeout ?? 2) * 1000);

  // Fail fast instead of queueing commands while disconnected: a queued request would hang the browser.
  // The per-command deadline is a plain timer: node-redis's own `timeout` option builds an
  // AbortSignal.timeout (a DOMException, an event listener, a weak registry entry) per command, which
  // took about 7 % of a proxied call's CPU in a profile of the proxy on the Redis store.
  const cmd = (args: string[]): Promise<unknown> => {
    if (!client.isReady)
      return Promise.reject(
        new BffError('ERR_BFF_STORE_UNAVAILABLE', 'Redis is not connected', { retryAfter: 1 }),
      );
    // Callbacks passed inline, not held in named consts: every proxied call runs this twice, and a named
    // closure per call is one more object (and one more property definition under a dev-time loader).
    return new Promise((resolve, reject) => {
      const timer = setTimeout(rejectTimedOut, timeout, reject);
      let sent: Promise<unknown>;
      try {
        sent = client.sendCommand(args);
      } catch (err) {
        clearTimeout(timer);
        reject(commandFailed(err));
        return;
      }
      sent.then(
        (reply) => {
          clearTimeout(timer);
          resolve(reply);
        },
        (err: unknown) => {
          clearTimeout(timer);
          reject(commandFailed(err));
        },
      );
    });
  };
  const evalScript = (script: string, keys: string[], args: string[]) =>
    cmd(['EVAL', script, String(keys.length), ...keys, ...args]);

  // The rate limiter runs on every proxied call: send the script's hash, and the script itself only when
  // Redis does not know it yet (first call, or after SCRIPT FLUSH / a restart).
  const evalCached = async (script: string, sha: string, keys: string[], args: string[]) => {
    try {
      return await cmd(['EVALSHA', sha, String(keys.length), ...keys, ...args]);
    } catch (err) {
      const cause = err instanceof BffError ? err.cause : err;
      if (!(cause instanceof Error) || !cause.message.startsWith('NOSCRIPT')) throw err;
      return evalScript(script, keys, args);
    }
  };

  const sessionKey = (id: string) => `${prefix}s:${id}`;
  const subIndexKey = (iss: string, sub: string) => `${prefix}u:${sha256(`${iss}\u0000${sub}`)}`;
  const sidIndexKey = (iss: string, sid: string) => `${prefix}x:${sha256(`${iss}\u0000${sid}`)}`;
  const lockKeyOf = (key: string) => `${prefix}l:${key}`;

  return {
    kind: 'shared',
    // get and consumeRate run on every proxied call: plain promise chains with module-level callbacks,
    // no async frame of their own.
    get(id): Promise<StoredSession | undefined> {
      return cmd(['HMGET', sessionKey(id), 'd', 't']).then(toStoredSession);
    },
    async set(id, value, ttlSeconds) {
      const indexKeys: string[] = [];
      if (value.index) {
        indexKeys.push(subIndexKey(value.index.iss, value.index.sub));
        if (value.index.sid !== undefined) indexKeys.push(sidIndexKey(value.index.iss, value.index.sid));
      }
      const written = await evalScript(
        SET_SESSION,
        [sessionKey(id), ...indexKeys],
        [
          value.data,
          JSON.stringify(indexKeys),
          String(Math.max(1, Math.ceil(ttlSeconds * 1000))),
          id,
          value.tokens === undefined ? '0' : '1',
          value.tokens ?? '',
          value.update ? '1' : '0',
        ],
      );
      return written === 1;
    },
    async setTokens(id, tokens, fence) {
      if (!fence) return (await evalScript(SET_TOKENS, [sessionKey(id)], [tokens])) === 1;
      return (
        (await evalScript(SET_TOKENS, [sessionKey(id), lockKeyOf(fence.key)], [tokens, fence.token])) === 1
      );
    },
    async destroy(id) {
      await evalScript(DESTROY, [sessionKey(id)], [id]);
    },
    async find(match: SessionMatch) {
      const keys: string[] = [];
      if (match.sid !== undefined) {
        keys.push(sidIndexKey(match.iss, match.sid));
        if (match.sub !== undefined) keys.push(subIndexKey(match.iss, match.sub));
      } else if (match.sub !== undefined) {
        keys.push(subIndexKey(match.iss, match.sub));
      } else {
        return [];
      }
      const ids = (await evalScript(FIND, keys, [`${prefix}s:`])) as string[];
      return [...ids];
    },
    async claimOnce(key, ttlSeconds) {
      const reply = await cmd([
        'SET',
        `${prefix}o:${key}`,
        '1',
        'NX',
        'EX',
        String(Math.max(1, Math.ceil(ttlSeconds))),
      ]);
      return reply === 'OK';
    },
    async lock(key, ttlSeconds): Promise<StoreLock | undefined> {
      const token = randomBytes(16).toString('base64url');
      const lockKey = lockKeyOf(key);
      const reply = await cmd([
        'SET',
        lockKey,
        token,
        'NX',
        'PX',
        String(Math.max(1, Math.ceil(ttlSeconds * 1000))),
      ]);
      if (reply !== 'OK') return undefined;
      return {
        key,
        token,
        async release() {
          // Compare-and-delete: never release a lock that expired and was taken by someone else.
          await evalScript(RELEASE, [lockKey], [token]);
        },
        async extend(seconds) {
          const ms = String(Math.max(1, Math.ceil(seconds * 1000)));
          return (await evalScript(EXTEND, [lockKey], [token, ms])) === 1;
        },
      };
    },
    consumeRate(key, capacity, refillPerSecond): Promise<RateDecision> {
      return evalCached(
        CONSUME_RATE,
        CONSUME_RATE_SHA,
        [`${prefix}r:${key}`],
        [String(capacity), String(refillPerSecond)],
      ).then(toRateDecision);
    },
  };
}
