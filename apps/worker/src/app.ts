// The sample worker: every `interval` seconds it calls the sample API's /api/reports with a
// client-credentials token from @gatehouse/token-manager, and logs one line per call. `server.ts`
// reads the environment and runs it; tests run it in-process.
import {
  createTokenFetch,
  createTokenManager,
  type PrivateJwk,
  type SharedCacheRedisClient,
  type TokenManager,
  TokenManagerError,
} from '@gatehouse/token-manager';
import type { Logger } from 'pino';

/** Configuration of {@link createWorker}. Durations are in seconds. */
export interface WorkerConfig {
  /** Issuer of the sample IdP, e.g. `http://127.0.0.1:4000`. */
  issuer: string;
  /** Origin of the sample API, e.g. `http://127.0.0.1:4001`. */
  apiUrl: string;
  /** `client_id` at the IdP: `worker` (secret) or `worker-jwt` (private_key_jwt). */
  clientId: string;
  /** Secret of a `client_secret_basic` client. */
  clientSecret?: string;
  /** Private JWK of a `private_key_jwt` client (instead of a secret). */
  privateKey?: PrivateJwk;
  /**
   * Use DPoP-bound tokens (RFC 9449): the worker generates an ES256 key pair at start, every token
   * request and API call carries a proof, and a copied token alone is useless. Default false.
   */
  dpop?: boolean;
  /** Scope to ask for. Default `api.reports`. */
  scope?: string;
  /** Seconds between two calls. Default 5. */
  interval?: number;
  /** Seconds before expiry at which the token is renewed. Default: the token manager's (60). */
  renewalMargin?: number;
  /** A connected node-redis client: share tokens with every worker using the same Redis. */
  redis?: SharedCacheRedisClient;
  /** Secret (32+ characters) the shared-cache encryption key is derived from. Required with `redis`. */
  cacheSecret?: string;
  /** Key prefix in Redis. Default `gatehouse:worker:`. */
  cacheKeyPrefix?: string;
  /** pino logger for the per-call lines. */
  logger: Logger;
  /** `fetch` for the IdP and the API (tests). Default: global fetch. */
  fetch?: typeof fetch;
}

/** What one call to the API gave. */
export interface CallResult {
  /** HTTP status of the API, or 0 when no request could be sent (no token, network error). */
  status: number;
  /** Where the token came from: `cache` (this process), `shared` (Redis), `renewed` (token request). */
  token: 'cache' | 'shared' | 'renewed' | 'none';
  /** `DPoP` or `Bearer`, when a token was obtained. */
  tokenType?: 'Bearer' | 'DPoP';
  /** Error code when the call failed before reaching the API. */
  error?: string;
}

/** A created worker. `start()` schedules calls; `stop()` ends them and waits for the one in flight. */
export interface Worker {
  readonly tokens: TokenManager;
  start(): void;
  /** Makes one call now (what every tick does). */
  runOnce(): Promise<CallResult>;
  stop(): Promise<void>;
}

const CLIENT = 'sample-api';

/** Creates the sample worker (not started). */
export function createWorker(config: WorkerConfig): Worker {
  const interval = config.interval ?? 5;
  if (!(interval > 0)) throw new TypeError('createWorker: interval must be a positive number of seconds');
  if (config.redis && !config.cacheSecret) {
    throw new TypeError(
      'createWorker: cacheSecret (32+ characters) is required with redis: tokens are encrypted in Redis',
    );
  }
  const log = config.logger;
  const tokens = createTokenManager({
    clients: {
      [CLIENT]: {
        issuer: config.issuer,
        clientId: config.clientId,
        ...(config.privateKey ? { privateKey: config.privateKey } : { clientSecret: config.clientSecret }),
        scope: config.scope ?? 'api.reports',
        // A fresh key per process: it never leaves memory, and the IdP binds each token to it.
        ...(config.dpop ? { dpop: { generate: 'ES256' as const } } : {}),
      },
    },
    ...(config.renewalMargin === undefined ? {} : { renewalMargin: config.renewalMargin }),
    // Inside the margin the worker keeps calling with its still-valid token while one renewal runs
    // behind it: a slow or frozen IdP delays no call until the token really runs out.
    renewAhead: true,
    ...(config.redis
      ? {
          sharedCache: {
            redis: config.redis,
            encryptionSecret: config.cacheSecret!,
            keyPrefix: config.cacheKeyPrefix ?? 'gatehouse:worker:',
          },
        }
      : {}),
    ...(config.fetch ? { fetch: config.fetch } : {}),
    logger: log.child({ component: 'token-manager' }),
  });

  // The token fetch hides where its token came from; the manager's events tell us. Calls never
  // overlap (the next is scheduled when the previous ends), so "the last event" is this call's.
  // With renewAhead a renewal may finish behind a call that already took the cached token: that call
  // stays `cache`, and the next one (the first to use the new token) is labelled `renewed`.
  let source: CallResult['token'] = 'none';
  let tokenType: CallResult['tokenType'];
  let expiresIn: number | undefined;
  let renewedBehind = false;
  tokens.on('token.cache-hit', (event) => {
    if (source !== 'none') return;
    source = renewedBehind ? 'renewed' : event.source === 'memory' ? 'cache' : 'shared';
    renewedBehind = false;
    tokenType = event.tokenType;
    expiresIn = Math.round(event.expiresIn);
  });
  tokens.on('token.renewed', (event) => {
    // When the token was renewed and how long it lives (never the token itself).
    log.info({ tokenType: event.tokenType, expiresIn: event.expiresIn }, 'token renewed');
    if (source !== 'none') {
      renewedBehind = true;
      return;
    }
    source = 'renewed';
    tokenType = event.tokenType;
    expiresIn = Math.round(event.expiresIn);
  });
  // The thumbprint is public (it is the tokens' `cnf.jkt`); the private key is never logged.
  const dpopJkt = tokens.dpopKey(CLIENT)?.thumbprint;

  const apiFetch = createTokenFetch(tokens, CLIENT, config.fetch ? { fetch: config.fetch } : {});
  const url = new URL('/api/reports', config.apiUrl).href;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<CallResult> | undefined;
  let stopped = false;
  const abort = new AbortController();

  async function runOnce(): Promise<CallResult> {
    source = 'none';
    tokenType = undefined;
    expiresIn = undefined;
    const started = performance.now();
    let result: CallResult;
    try {
      const response = await apiFetch(url, { signal: abort.signal, headers: { accept: 'application/json' } });
      const body = (await response.json().catch(() => undefined)) as
        | { todos?: number; users?: number }
        | undefined;
      result = { status: response.status, token: source, ...(tokenType ? { tokenType } : {}) };
      const line = {
        status: result.status,
        token: result.token,
        tokenType,
        expiresIn,
        ms: Math.round(performance.now() - started),
      };
      if (response.ok) log.info({ ...line, users: body?.users, todos: body?.todos }, 'GET /api/reports');
      else log.warn(line, 'GET /api/reports');
    } catch (error) {
      const code =
        error instanceof TokenManagerError ? error.code : abort.signal.aborted ? 'aborted' : 'network_error';
      result = { status: 0, token: source, error: code };
      const line = { status: 0, token: source, error: code, ms: Math.round(performance.now() - started) };
      if (code === 'aborted') log.info(line, 'GET /api/reports cancelled by stop');
      else log.error(line, 'GET /api/reports failed');
    }
    return result;
  }

  function schedule(delayMs: number): void {
    if (stopped) return;
    timer = setTimeout(() => {
      running = runOnce();
      void running.finally(() => {
        running = undefined;
        schedule(interval * 1000);
      });
    }, delayMs);
  }

  return {
    tokens,
    runOnce,
    start() {
      if (stopped) throw new Error('createWorker: a stopped worker cannot be started again');
      if (timer || running) return;
      log.info(
        {
          api: url,
          issuer: config.issuer,
          clientId: config.clientId,
          interval,
          sharedCache: Boolean(config.redis),
          tokenType: dpopJkt ? 'DPoP' : 'Bearer',
          ...(dpopJkt ? { dpopJkt } : {}),
        },
        'worker started',
      );
      schedule(0);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      clearTimeout(timer);
      timer = undefined;
      abort.abort();
      await running?.catch(() => {});
      log.info('worker stopped');
    },
  };
}
