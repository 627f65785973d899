// The session's tokens: encrypted at rest (AES-256-GCM, bound to the session id), decrypted on demand
// and cached in-process briefly, refreshed single-flight: one promise per session in this process and
// a store lock across instances, re-reading the session after taking the lock (R2).
import type { IncomingMessage } from 'node:http';
import type { Request } from 'express';
import * as client from 'openid-client';
import type { ResolvedBffConfig } from './config.js';
import type { Logger } from './context.js';
import { createSealer } from './crypto.js';
import { BffError, describeError } from './errors.js';
import { checkRefreshedIdToken, isIdTokenRejection } from './id-token.js';
import { classifyTokenError } from './oidc.js';
import type { LoadedSession, SessionManager } from './session.js';
import type { SessionStore } from './store/types.js';

/** The decrypted token record of a session. Times are epoch seconds. */
export interface TokenRecord {
  /** Access token for the default resource (opaque: never decoded, R1). */
  at: string;
  /** When `at` expires, from `expires_in` at issue time. */
  exp: number;
  /** `expires_in` as issued (seconds): bounds the refresh margin for short-lived tokens. */
  ttl?: number;
  rt?: string | undefined;
  idt?: string | undefined;
  /** Access tokens for other resources (RFC 8707), obtained with the refresh token. */
  res?: Record<string, { at: string; exp: number; ttl?: number }>;
}

/** Lifetime assumed when a token response has no `expires_in`. */
const DEFAULT_EXPIRES_IN = 300;
/** How long a refresh lock is held at most, and how long a waiter waits for it (seconds). */
const LOCK_TTL = 30;
/** Attempts at the token endpoint for transient failures (R5) and the waits between them (ms). */
const RETRY_DELAYS = [100, 300];
/** Decrypted records are reused only this long (ms), so plaintext does not linger. */
const CACHE_MS = 5 * 60_000;
const CACHE_MAX = 10_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Token handling for one createBff instance. */
export interface TokenService {
  seal(sessionId: string, record: TokenRecord): string;
  open(sessionId: string, sealed: string | undefined): TokenRecord | undefined;
  /** Builds a record from a token endpoint response. */
  fromResponse(
    response: client.TokenEndpointResponse,
    previous?: TokenRecord,
    resource?: string,
  ): TokenRecord;
  /** The request's access token, refreshed when needed. */
  getUserAccessToken(
    req: Request | IncomingMessage,
    options?: { forceRefresh?: boolean; resource?: string },
  ): Promise<string>;
  /** Drops the in-process cache entry of a session. */
  forget(sessionId: string): void;
}

/** Creates the token service. `endSession` destroys a session everywhere (R4, R6). */
export function createTokenService(deps: {
  config: ResolvedBffConfig;
  store: SessionStore;
  sessions: SessionManager;
  logger: Logger;
  clock: () => number;
  getOidcConfiguration: () => Promise<client.Configuration>;
  endSession: (sessionId: string) => Promise<void>;
}): TokenService {
  const { config, store, sessions, logger, clock, getOidcConfiguration, endSession } = deps;
  const sealer = createSealer(config.sessionSecrets, 'tokens');
  const now = () => clock() / 1000;
  const cache = new Map<string, { sealed: string; record: TokenRecord; at: number }>();
  const flights = new Map<string, Promise<string>>();

  function seal(sessionId: string, record: TokenRecord): string {
    return sealer.seal(JSON.stringify(record), `tokens:${sessionId}`);
  }

  function open(sessionId: string, sealed: string | undefined): TokenRecord | undefined {
    if (!sealed) return undefined;
    const hit = cache.get(sessionId);
    if (hit && hit.sealed === sealed && clock() - hit.at < CACHE_MS) return hit.record;
    const plain = sealer.open(sealed, `tokens:${sessionId}`);
    if (plain === undefined) return undefined;
    const record = JSON.parse(plain) as TokenRecord;
    if (cache.size >= CACHE_MAX) {
      const oldest = cache.keys().next();
      if (!oldest.done) cache.delete(oldest.value);
    }
    cache.delete(sessionId);
    cache.set(sessionId, { sealed, record, at: clock() });
    return record;
  }

  function fromResponse(
    response: client.TokenEndpointResponse,
    previous?: TokenRecord,
    resource?: string,
  ): TokenRecord {
    const ttl = typeof response.expires_in === 'number' ? response.expires_in : DEFAULT_EXPIRES_IN;
    const exp = Math.floor(now()) + ttl;
    const rt = response.refresh_token ?? previous?.rt; // R3: a rotated refresh token replaces the old one
    const idt = response.id_token ?? previous?.idt;
    if (resource !== undefined && previous) {
      return {
        ...previous,
        rt,
        idt,
        res: { ...previous.res, [resource]: { at: response.access_token, exp, ttl } },
      };
    }
    return { at: response.access_token, exp, ttl, rt, idt, ...(previous?.res ? { res: previous.res } : {}) };
  }

  // A token that lives shorter than twice the margin is refreshed at half its lifetime instead, so a
  // 60 s token with the default 60 s margin is not refreshed on every single call (R1).
  const fresh = (record: TokenRecord, resource: string | undefined) => {
    const slot = resource === undefined ? record : record.res?.[resource];
    if (!slot) return undefined;
    const margin =
      slot.ttl === undefined ? config.refreshMargin : Math.min(config.refreshMargin, slot.ttl / 2);
    return slot.exp - margin > now() ? slot.at : undefined;
  };

  async function getUserAccessToken(
    req: Request | IncomingMessage,
    options: { forceRefresh?: boolean; resource?: string } = {},
  ): Promise<string> {
    const loaded = await sessions.current(req);
    if (!loaded) throw new BffError('ERR_BFF_NO_SESSION', 'no session');
    // The default resource is the configured one; asking for it explicitly is the same token.
    const resource =
      options.resource === undefined ||
      (config.resource.length === 1 && config.resource[0] === options.resource)
        ? undefined
        : options.resource;
    const record = open(loaded.id, loaded.tokens);
    if (record && !options.forceRefresh) {
      const at = fresh(record, resource);
      if (at) return at;
    }
    const staleAt = options.forceRefresh
      ? resource === undefined
        ? record?.at
        : record?.res?.[resource]?.at
      : undefined;
    const key = `${loaded.id}\u0000${resource ?? ''}`;
    let flight = flights.get(key);
    if (!flight) {
      flight = refresh(loaded, resource, staleAt).finally(() => flights.delete(key));
      flights.set(key, flight);
    }
    const at = await flight;
    const latest = cache.get(loaded.id);
    if (latest) sessions.updateSnapshot(req, latest.sealed);
    return at;
  }

  async function acquire(sessionId: string) {
    const deadline = clock() + LOCK_TTL * 1000;
    for (;;) {
      const lock = await store.lock(`refresh:${sessionId}`, LOCK_TTL);
      if (lock) return lock;
      if (clock() > deadline)
        throw new BffError('ERR_BFF_IDP_UNAVAILABLE', 'refresh lock not released in time');
      await sleep(20 + Math.random() * 20);
    }
  }

  async function refresh(loaded: LoadedSession, resource: string | undefined, staleAt: string | undefined) {
    const lock = await acquire(loaded.id);
    try {
      // Another request or instance may have refreshed while we waited: re-read and re-check.
      const stored = await store.get(loaded.id);
      if (!stored) throw new BffError('ERR_BFF_SESSION_ENDED', 'session ended');
      const record = open(loaded.id, stored.tokens);
      if (!record) {
        await endSession(loaded.id);
        throw new BffError('ERR_BFF_SESSION_ENDED', 'token record unreadable');
      }
      const current = fresh(record, resource);
      if (current && current !== staleAt) return current;
      if (!record.rt) {
        await endSession(loaded.id);
        throw new BffError('ERR_BFF_SESSION_ENDED', 'access token expired and there is no refresh token');
      }

      const configuration = await getOidcConfiguration();
      const params: Record<string, string> = {};
      if (resource !== undefined) params.resource = resource;
      else if (config.resource.length === 1 && config.resource[0]) params.resource = config.resource[0];

      let response: Awaited<ReturnType<typeof client.refreshTokenGrant>> | undefined;
      for (let attempt = 0; ; attempt++) {
        try {
          response = await client.refreshTokenGrant(configuration, record.rt, params);
          break;
        } catch (err) {
          // R6: a refreshed ID token refused by openid-client (alg, claims) ends the session.
          const kind = isIdTokenRejection(err) ? 'validation' : classifyTokenError(err);
          logger.warn({ err: describeError(err), kind, attempt: attempt + 1 }, 'bff: token refresh failed');
          if (kind === 'transient' && attempt < RETRY_DELAYS.length) {
            await sleep(RETRY_DELAYS[attempt] ?? 100);
            continue;
          }
          if (kind === 'transient')
            throw new BffError('ERR_BFF_IDP_UNAVAILABLE', 'token endpoint unavailable', { cause: err });
          if (kind === 'response')
            throw new BffError('ERR_BFF_IDP_RESPONSE', 'unusable token response', { cause: err });
          // invalid_grant (R4) or a refreshed ID token that fails validation (R6): the session is over.
          await endSession(loaded.id);
          throw new BffError('ERR_BFF_SESSION_ENDED', 'refresh rejected', { cause: err });
        }
      }

      // R6: signature (the login's alg set and key source) and same iss, sub, aud, azp, auth_time.
      if (!(await checkRefreshedIdToken(configuration, response, loaded.data))) {
        logger.warn({}, 'bff: refreshed ID token does not match the session; ending it');
        await endSession(loaded.id);
        throw new BffError('ERR_BFF_SESSION_ENDED', 'refreshed ID token does not match the session');
      }

      const next = fromResponse(response, record, resource);
      const sealed = seal(loaded.id, next);
      const written = await store.setTokens(loaded.id, sealed);
      if (!written) throw new BffError('ERR_BFF_SESSION_ENDED', 'session ended during refresh');
      open(loaded.id, sealed);
      return resource === undefined ? next.at : (next.res?.[resource]?.at ?? next.at);
    } finally {
      lock
        .release()
        .catch((err: unknown) => logger.warn({ err: describeError(err) }, 'bff: lock release failed'));
    }
  }

  return {
    seal,
    open,
    fromResponse,
    getUserAccessToken,
    forget(sessionId) {
      cache.delete(sessionId);
    },
  };
}
