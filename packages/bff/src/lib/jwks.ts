// The OP's signing keys, for ID tokens (login and refresh) and logout tokens alike: one cache per
// discovered provider, fetched from `jwks_uri` with the BFF's own fetch and timeout. jose's remote set
// and openid-client refetch on an unknown `kid` only once the cached set is 30–60 s old, so a key
// rotation at the OP refused logins for up to a minute. Here an unknown `kid` triggers one refetch at
// once, however fresh the cached set is; further unknown-`kid` refetches wait for a cooldown, so a
// flood of made-up `kid`s costs the OP at most one JWKS request per cooldown (SECURITY L10, L10a).
import {
  type CryptoKey,
  createLocalJWKSet,
  errors,
  type FlattenedJWSInput,
  type JSONWebKeySet,
  type JWSHeaderParameters,
} from 'jose';
import { BffError, describeError } from './errors.js';
import type { FetchLike } from './http/fetch.js';
import type { Logger } from './logger.js';

/** Seconds between two refetches caused by an unknown `kid` (the first one is immediate). */
export const JWKS_REFETCH_COOLDOWN = 10;
/** Seconds a fetched key set is used before it is fetched again anyway (removed keys age out). */
export const JWKS_MAX_AGE = 300;
/** Seconds a failed fetch is remembered while no key set is cached (a dead OP is not hammered). */
const FAILURE_BACKOFF = 2;
/** A key set is a few KB; anything far larger is not one. */
const MAX_JWKS_BYTES = 512 * 1024;

/** Resolves the verification key of a JWS from the OP's key set (a jose `JWTVerifyGetKey`). */
export type JwksKeyResolver = (header: JWSHeaderParameters, token: FlattenedJWSInput) => Promise<CryptoKey>;

/** The OP's key set with the refetch policy above. */
export interface JwksSource {
  /**
   * The key for `header` (`kid`/`alg`). Rejects with jose's `JWKSNoMatchingKey` when no key matches
   * even after the refetch the policy allows, and with BffError `ERR_BFF_IDP_UNAVAILABLE` (503) when
   * the key set cannot be fetched.
   */
  readonly getKey: JwksKeyResolver;
}

/** Options of {@link createJwksSource}. Durations in seconds; `clock` in epoch milliseconds. */
export interface JwksSourceOptions {
  readonly uri: URL;
  readonly fetch: FetchLike;
  readonly timeout: number;
  readonly clock: () => number;
  readonly logger: Logger;
  readonly refetchCooldown?: number;
  readonly maxAge?: number;
}

interface CachedSet {
  readonly resolve: ReturnType<typeof createLocalJWKSet>;
  /** When it was fetched (epoch ms). */
  readonly at: number;
}

/** Creates the key source for one discovered provider. Nothing is fetched until the first key lookup. */
export function createJwksSource(options: JwksSourceOptions): JwksSource {
  const { uri, fetch: fetchImpl, timeout, clock, logger } = options;
  const cooldownMs = (options.refetchCooldown ?? JWKS_REFETCH_COOLDOWN) * 1000;
  const maxAgeMs = (options.maxAge ?? JWKS_MAX_AGE) * 1000;
  let current: CachedSet | undefined;
  let inflight: Promise<void> | undefined;
  let lastMissRefetch = Number.NEGATIVE_INFINITY;
  let failedAt = Number.NEGATIVE_INFINITY;

  const download = async (): Promise<void> => {
    try {
      const response = await fetchImpl(uri.href, {
        method: 'GET',
        headers: { accept: 'application/json, application/jwk-set+json' },
        redirect: 'manual',
        signal: AbortSignal.timeout(timeout * 1000),
      });
      if (response.status !== 200) throw new Error(`jwks_uri answered HTTP ${response.status}`);
      const text = await response.text();
      if (text.length > MAX_JWKS_BYTES) throw new Error('jwks_uri answered an oversized body');
      const resolve = createLocalJWKSet(JSON.parse(text) as JSONWebKeySet);
      current = { resolve, at: clock() };
    } catch (err) {
      failedAt = clock();
      logger.warn({ err: describeError(err) }, 'bff: fetching the OP signing keys failed');
      throw new BffError('ERR_BFF_IDP_UNAVAILABLE', 'the OP signing keys are unavailable', {
        cause: err,
        retryAfter: FAILURE_BACKOFF,
      });
    }
  };

  // Single flight: concurrent lookups share one request.
  const refresh = (): Promise<void> => {
    inflight ??= download().finally(() => {
      inflight = undefined;
    });
    return inflight;
  };

  const getKey: JwksKeyResolver = async (header, token) => {
    if (!current || clock() - current.at >= maxAgeMs) {
      // After a failure, wait before asking again: briefly with nothing cached, a cooldown while an
      // outdated set can still serve (it beats none while the OP's key endpoint is down).
      const backoff = current ? cooldownMs : FAILURE_BACKOFF * 1000;
      if (inflight || clock() - failedAt >= backoff) {
        try {
          await refresh();
        } catch (err) {
          if (!current) throw err;
        }
      } else if (!current) {
        throw new BffError('ERR_BFF_IDP_UNAVAILABLE', 'the OP signing keys were unavailable moments ago', {
          retryAfter: FAILURE_BACKOFF - (clock() - failedAt) / 1000,
        });
      }
    }
    const used = current as CachedSet;
    try {
      return await used.resolve(header, token);
    } catch (err) {
      if (!(err instanceof errors.JWKSNoMatchingKey)) throw err;
      if (inflight) {
        // Someone is already refetching: use that result, never start a second request.
        await inflight.catch(() => undefined);
      } else if (current === used && clock() - lastMissRefetch >= cooldownMs) {
        lastMissRefetch = clock();
        await refresh();
      }
      if (!current || current === used) throw err;
      return current.resolve(header, token);
    }
  };

  return { getKey };
}
