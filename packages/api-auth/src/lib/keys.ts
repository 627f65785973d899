import {
  createRemoteJWKSet,
  customFetch,
  type ExportedJWKSCache,
  errors,
  type FlattenedJWSInput,
  type JWKSCacheInput,
  type JWSHeaderParameters,
  type JWTVerifyGetKey,
  jwksCache,
} from 'jose';
import { LRUCache } from 'lru-cache';
import type { ResolvedConfig } from './config.js';
import { withDeadline } from './deadline.js';
import { AccessTokenError } from './errors.js';
import type { IssuerMetadata } from './metadata.js';

type KeyResult = Awaited<ReturnType<JWTVerifyGetKey>>;

/**
 * After a failed JWKS fetch, further fetches within this window fail at once: jose only rate-limits
 * refetches after a *successful* fetch, and an outage must not turn every request into a fetch.
 */
const FAILURE_BACKOFF_MS = 1000;

/** Distinct token headers remembered per key set (an issuer uses a handful). */
const MEMO_LIMIT = 64;

/** A key resolver for `jwtVerify` plus a warm-up hook. */
export interface KeySource {
  /** Resolves the verification key from the issuer's JWKS only (never `jku`, `x5u` or `jwk`). */
  readonly getKey: JWTVerifyGetKey;
  /**
   * The key jose already chose for a token with exactly this encoded protected header, while the
   * key set it came from is still loaded and fresh; else undefined (then use {@link getKey}).
   */
  cachedKey(encodedHeader: string): KeyResult | undefined;
  /** Discovers the JWKS URL and fetches the keys now. */
  warmUp(): Promise<void>;
}

/**
 * Wraps jose's remote JWKS: it caches the set for `jwksCacheMaxAge`, refetches on an unknown `kid`
 * at most once per `jwksCooldown`, and shares one in-flight fetch. Any failure to obtain keys
 * becomes a 503 so an outage never turns into a 200 or a misleading 401.
 */
export function createKeySource(config: ResolvedConfig, metadata: () => Promise<IssuerMetadata>): KeySource {
  let remote: ReturnType<typeof createRemoteJWKSet> | undefined;
  // jose updates this record whenever it (re)loads the key set; `uat` tells us the set changed.
  const snapshot: JWKSCacheInput = {};
  const loadedAt = () => (snapshot as Partial<ExportedJWKSCache>).uat;
  // Hot-path memo of keys jose already selected, by encoded protected header (so a hit needs no
  // decoding); valid only for one loaded key set, and bounded because headers come from callers.
  const resolved = new LRUCache<string, KeyResult>({ max: MEMO_LIMIT });
  let resolvedFor: number | undefined;
  let pending: Promise<ReturnType<typeof createRemoteJWKSet>> | undefined;

  let blockedUntil = 0;
  const jwksFetch: typeof fetch = async (input, init) => {
    if (Date.now() < blockedUntil) throw new Error('JWKS fetch skipped: the last attempt failed moments ago');
    try {
      const response = await config.fetch(input, init);
      if (response.status !== 200) blockedUntil = Date.now() + FAILURE_BACKOFF_MS;
      return response;
    } catch (cause) {
      blockedUntil = Date.now() + FAILURE_BACKOFF_MS;
      throw cause;
    }
  };

  const build = async () => {
    let uri = config.jwksUri;
    if (uri === undefined) {
      uri = (await metadata()).jwks_uri;
      if (uri === undefined) {
        throw new AccessTokenError('ERR_API_AUTH_CONFIG', 'the issuer metadata has no jwks_uri');
      }
    }
    remote = createRemoteJWKSet(new URL(uri), {
      cooldownDuration: config.jwksCooldown * 1000,
      cacheMaxAge: config.jwksCacheMaxAge * 1000,
      timeoutDuration: Math.ceil(config.timeout * 1000),
      [customFetch]: jwksFetch,
      [jwksCache]: snapshot,
    });
    return remote;
  };

  const resolve = async (
    jwks: ReturnType<typeof createRemoteJWKSet>,
    header: JWSHeaderParameters,
    token: FlattenedJWSInput,
  ): Promise<KeyResult> => {
    try {
      const key = await jwks(header, token);
      if (typeof token.protected === 'string') {
        if (resolvedFor !== loadedAt()) {
          resolved.clear();
          resolvedFor = loadedAt();
        }
        resolved.set(token.protected, key);
      }
      return key;
    } catch (cause) {
      // "No such key" and "several keys fit" are verdicts on the token; anything else means the
      // key set could not be obtained or parsed.
      if (cause instanceof errors.JWKSNoMatchingKey || cause instanceof errors.JWKSMultipleMatchingKeys) {
        throw cause;
      }
      if (cause instanceof AccessTokenError) throw cause;
      config.logger.warn(
        {
          code: 'ERR_API_AUTH_KEYS_UNAVAILABLE',
          reason: cause instanceof Error ? cause.message : String(cause),
        },
        'JWKS fetch failed',
      );
      throw new AccessTokenError(
        'ERR_API_AUTH_KEYS_UNAVAILABLE',
        "the issuer's signing keys cannot be fetched",
        {
          cause,
        },
      );
    }
  };

  const ensureRemote = () => {
    pending ??= build().catch((cause: unknown) => {
      pending = undefined;
      throw cause;
    });
    return pending;
  };

  // Only reached when the memo has no key (cold start, new kid, stale set), so the timer costs the
  // hot path nothing. It bounds the whole wait (discovery, both well-known locations, the JWKS) by
  // `timeout`, where the individual fetches' own timeouts could add up to several times that.
  const timeoutMs = config.timeout * 1000;
  const late = () => {
    config.logger.warn(
      { code: 'ERR_API_AUTH_KEYS_UNAVAILABLE', timeout: config.timeout },
      'JWKS wait timed out',
    );
    return new AccessTokenError(
      'ERR_API_AUTH_KEYS_UNAVAILABLE',
      "the issuer's signing keys did not arrive in time",
    );
  };
  const getKey: JWTVerifyGetKey = (header, token) =>
    withDeadline(
      remote ? resolve(remote, header, token) : ensureRemote().then((jwks) => resolve(jwks, header, token)),
      timeoutMs,
      late,
    );

  return {
    getKey,
    // The same header (alg, kid …) in the same, still fresh key set yields the same key. A stale set
    // (past jwksCacheMaxAge) or a reloaded one (new uat) goes through jose again, so a key the
    // issuer withdrew stops working exactly as without the memo.
    cachedKey(encodedHeader) {
      if (!remote || resolvedFor !== loadedAt() || !remote.fresh) return undefined;
      return resolved.get(encodedHeader);
    },
    async warmUp() {
      const jwks = await ensureRemote();
      if (!jwks.fresh) {
        try {
          await jwks.reload();
        } catch (cause) {
          throw new AccessTokenError(
            'ERR_API_AUTH_KEYS_UNAVAILABLE',
            "the issuer's signing keys cannot be fetched",
            {
              cause,
            },
          );
        }
      }
    },
  };
}
