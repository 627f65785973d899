// The introspection options (RFC 7662, for opaque tokens), validated into a frozen ResolvedIntrospection.
import { checkKeys, checkUrl, fail, nonEmptyString, seconds } from './option-checks.js';

/** Options of RFC 7662 token introspection, for opaque (non-JWT) access tokens. */
export interface IntrospectionOptions {
  /** This API's own client id at the authorization server. */
  clientId: string;
  /** This API's client secret. */
  clientSecret: string;
  /** Introspection endpoint; default: `introspection_endpoint` from the issuer's metadata. */
  endpoint?: string;
  /** How to authenticate; default `client_secret_basic`. */
  authMethod?: 'client_secret_basic' | 'client_secret_post';
  /**
   * Upper bound, in seconds, on how long an active result is reused; a result is never reused past
   * the token's `exp`. `0` disables the cache. Default 60.
   */
  cacheMaxAge?: number;
  /** Most cached results kept (oldest evicted first). Default 10 000. */
  maxCacheEntries?: number;
}

export interface ResolvedIntrospection {
  readonly clientId: string;
  readonly clientSecret: string;
  readonly endpoint: string | undefined;
  readonly authMethod: 'client_secret_basic' | 'client_secret_post';
  readonly cacheMaxAge: number;
  readonly maxCacheEntries: number;
}

const INTROSPECTION_KEYS = new Set<string>([
  'clientId',
  'clientSecret',
  'endpoint',
  'authMethod',
  'cacheMaxAge',
  'maxCacheEntries',
]);

/** Validates `introspection`; undefined when it is not configured. */
export function resolveIntrospection(
  value: unknown,
  allowInsecure: boolean,
): ResolvedIntrospection | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'object' || value === null) fail('"introspection" must be an object');
  checkKeys(value, INTROSPECTION_KEYS, 'introspection.');
  const options = value as IntrospectionOptions;
  const authMethod = options.authMethod ?? 'client_secret_basic';
  if (authMethod !== 'client_secret_basic' && authMethod !== 'client_secret_post') {
    fail('"introspection.authMethod" must be "client_secret_basic" or "client_secret_post"');
  }
  const maxCacheEntries = options.maxCacheEntries ?? 10_000;
  if (!Number.isInteger(maxCacheEntries) || maxCacheEntries < 1) {
    fail('"introspection.maxCacheEntries" must be a positive integer');
  }
  return Object.freeze({
    clientId: nonEmptyString(options.clientId, 'introspection.clientId'),
    clientSecret: nonEmptyString(options.clientSecret, 'introspection.clientSecret'),
    endpoint:
      options.endpoint === undefined
        ? undefined
        : checkUrl(options.endpoint, 'introspection.endpoint', allowInsecure),
    authMethod,
    cacheMaxAge: seconds(options.cacheMaxAge, 'introspection.cacheMaxAge', 60, 0, 86_400),
    maxCacheEntries,
  });
}
