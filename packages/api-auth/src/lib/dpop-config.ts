// The DPoP options (RFC 9449) of the validator, validated into a frozen ResolvedDPoP: the public URL
// proofs are checked against, accepted algorithms, proof lifetime, replay store and server nonces.
import { randomBytes } from 'node:crypto';
import { checkKeys, checkUrl, fail, resolveAlgorithms, seconds } from './option-checks.js';
import { createMemoryReplayStore, type DPoPReplayStore } from './replay.js';

/**
 * How a route treats DPoP (RFC 9449): `required` accepts only `Authorization: DPoP` with a proof;
 * `allowed` accepts DPoP and Bearer (a DPoP-bound token sent as Bearer is still refused);
 * `disabled` accepts Bearer only.
 */
export type DPoPPolicy = 'required' | 'allowed' | 'disabled';

/** Server-issued DPoP nonces (RFC 9449 §9), stateless: HMAC over a rotating time window. */
export interface DPoPNonceOptions {
  /**
   * HMAC secret(s), at least 32 characters each; the first issues nonces, all are accepted, so a
   * secret can be rotated. Give every API instance the same secret. Default: random per process
   * (right for a single instance).
   */
  secret?: string | readonly string[];
  /** Window length in seconds; a nonce is accepted for one to two windows. Default 120. */
  lifetime?: number;
}

/** DPoP support of the validator (RFC 9449 §4.3 and §7). */
export interface DPoPOptions {
  /**
   * This API's public base URL as clients call it, e.g. `https://api.example.com` (a path is allowed
   * for an API behind a path-mapping gateway). A proof's `htu` must equal this URL plus the request
   * path; the `Host` and `X-Forwarded-*` headers are never used, so a client cannot choose it.
   */
  publicUrl: string;
  /** Accepted proof algorithms (asymmetric only), also sent as `algs` in challenges. Default: all of {@link ASYMMETRIC_ALGORITHMS}. */
  algorithms?: readonly string[];
  /** How long after its `iat` a proof is accepted, 1–600 seconds; a future `iat` gets `clockTolerance`. Default 60. */
  proofLifetime?: number;
  /** Where accepted proof `jti`s are remembered. Default: {@link createMemoryReplayStore} (one process). */
  replayStore?: DPoPReplayStore;
  /** Require server nonces in proofs: `true` (random secret) or {@link DPoPNonceOptions}. Default off. */
  nonce?: boolean | DPoPNonceOptions;
}

export interface ResolvedDPoP {
  /** `publicUrl`'s origin, e.g. `https://api.example.com`. */
  readonly origin: string;
  /** `publicUrl`'s path without a trailing slash (`''` at the root). */
  readonly basePath: string;
  readonly algorithms: readonly string[];
  /** The `algs` challenge attribute, built once. */
  readonly algs: string;
  readonly proofLifetime: number;
  readonly replayStore: DPoPReplayStore;
  readonly nonce: { readonly secrets: readonly Buffer[]; readonly lifetime: number } | undefined;
}

const DPOP_KEYS = new Set<string>(['publicUrl', 'algorithms', 'proofLifetime', 'replayStore', 'nonce']);
const NONCE_KEYS = new Set<string>(['secret', 'lifetime']);

function resolveNonce(value: unknown): ResolvedDPoP['nonce'] {
  if (value === undefined || value === false) return undefined;
  if (value === true) return Object.freeze({ secrets: Object.freeze([randomBytes(32)]), lifetime: 120 });
  if (typeof value !== 'object' || value === null)
    fail('"dpop.nonce" must be true, false or { secret?, lifetime? }');
  checkKeys(value, NONCE_KEYS, 'dpop.nonce.');
  const options = value as DPoPNonceOptions;
  let secrets: Buffer[];
  if (options.secret === undefined) secrets = [randomBytes(32)];
  else {
    const list = typeof options.secret === 'string' ? [options.secret] : options.secret;
    if (!Array.isArray(list) || list.length === 0)
      fail('"dpop.nonce.secret" must be a string or a non-empty array of strings');
    secrets = list.map((secret) => {
      if (typeof secret !== 'string' || secret.length < 32) {
        fail('"dpop.nonce.secret" must be at least 32 characters (e.g. openssl rand -base64 32)');
      }
      return Buffer.from(secret, 'utf8');
    });
  }
  return Object.freeze({
    secrets: Object.freeze(secrets),
    lifetime: seconds(options.lifetime, 'dpop.nonce.lifetime', 120, 1, 3600),
  });
}

/** Validates `dpop`; undefined when DPoP is not enabled. */
export function resolveDPoP(value: unknown, allowInsecure: boolean): ResolvedDPoP | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'object' || value === null)
    fail('"dpop" must be an object such as { publicUrl: "https://api.example.com" }');
  checkKeys(value, DPOP_KEYS, 'dpop.');
  const options = value as DPoPOptions;
  if (options.publicUrl === undefined) {
    fail(
      '"dpop.publicUrl" is required: the base URL clients call this API at (DPoP htu is checked against it)',
    );
  }
  const url = new URL(checkUrl(options.publicUrl, 'dpop.publicUrl', allowInsecure));
  if (
    url.search !== '' ||
    url.hash !== '' ||
    url.username !== '' ||
    url.password !== '' ||
    options.publicUrl.includes('?')
  ) {
    fail('"dpop.publicUrl" must be a plain base URL without query, fragment or credentials');
  }
  const store = options.replayStore ?? createMemoryReplayStore();
  if (typeof store !== 'object' || store === null || typeof store.claimOnce !== 'function') {
    fail(
      '"dpop.replayStore" must have claimOnce(key, ttlSeconds) (createMemoryReplayStore() or createRedisReplayStore())',
    );
  }
  const algorithms = resolveAlgorithms(options.algorithms, 'dpop.algorithms', 'DPoP proofs');
  return Object.freeze({
    origin: url.origin,
    basePath: url.pathname.replace(/\/+$/, ''),
    algorithms,
    algs: algorithms.join(' '),
    proofLifetime: seconds(options.proofLifetime, 'dpop.proofLifetime', 60, 1, 600),
    replayStore: store,
    nonce: resolveNonce(options.nonce),
  });
}
