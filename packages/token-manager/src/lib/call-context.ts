// A call's context: the client, scopes and resources it asks for, and the cache key they map to (T4),
// memoised so that a cache hit costs one lookup instead of a parse and a hash.
import { createHash, createHmac, hkdfSync } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { TokenEndpoint } from './endpoint.js';
import { normalizeResources, normalizeScopes } from './option-checks.js';
import type { GetAccessTokenOptions } from './types.js';

/** Scope and resource of a call, when not the client's defaults. */
export type TokenScopeOptions = Pick<GetAccessTokenOptions, 'scope' | 'resource'>;

/** What one call asks for, resolved: the client, its scopes and resources, and their cache key. */
export interface CallContext {
  endpoint: TokenEndpoint;
  name: string;
  scopes: readonly string[];
  resources: readonly string[];
  /** Key in the memory cache and name of this process's entry in the shared cache. */
  hash: string;
  /** Shared-cache names of the same entry under older cache secrets (read during a rotation). */
  olderHashes: readonly string[];
}

/** Memoised call contexts (distinct scope/resource values per call) kept at most. */
const MAX_CONTEXTS = 1000;

/** The error for a client name that is not configured, listing those that are. */
export function unknownClient(name: string, endpoints: ReadonlyMap<string, TokenEndpoint>): TypeError {
  return new TypeError(
    `token manager: unknown client ${JSON.stringify(name)}; configured: ${[...endpoints.keys()].join(', ')}`,
  );
}

/**
 * The context of a call to client `name` with `options`; `cacheSecrets` are the shared cache's
 * secrets (none without a shared cache).
 * @throws {TypeError} for an unknown client name or a malformed scope/resource.
 */
export function createContextResolver(
  endpoints: ReadonlyMap<string, TokenEndpoint>,
  cacheSecrets: readonly string[],
): (name: string, options: TokenScopeOptions | undefined) => CallContext {
  // With a shared cache, key names are an HMAC under a key derived from the cache secret: the
  // credentials are part of the key, and a plain hash of a weak client secret in a Redis key name
  // could be brute-forced offline by anyone who can list the keys. One name per cache secret: the
  // first names what this process writes, the others are read during a secret rotation.
  const keyings = cacheSecrets.map((secret) =>
    Buffer.from(hkdfSync('sha256', secret, 'gatehouse/token-manager/shared-cache', 'cache key v2', 32)),
  );
  const cacheKeys = (material: string): string[] =>
    keyings.length === 0
      ? [createHash('sha256').update(material).digest('base64url')]
      : keyings.map((key) => createHmac('sha256', key).update(material).digest('base64url'));

  // Contexts are memoised: the hot path (a cache hit) should cost a lookup, not a parse and a
  // SHA-256. Keyed by the call's raw scope/resource values; bounded so odd callers cannot grow it.
  const contexts = new LRUCache<string, CallContext>({ max: MAX_CONTEXTS });
  const defaultContexts = new Map<string, CallContext>();

  return function context(name: string, options: TokenScopeOptions | undefined): CallContext {
    const scope = options?.scope;
    const resource = options?.resource;
    if (scope === undefined && resource === undefined) {
      const defaults = defaultContexts.get(name);
      if (defaults) return defaults;
    }
    const memoKey =
      (scope === undefined || typeof scope === 'string') &&
      (resource === undefined || typeof resource === 'string')
        ? `${name}\u0000${scope ?? '\u0001'}\u0000${resource ?? '\u0001'}`
        : undefined;
    const memo = memoKey === undefined ? undefined : contexts.get(memoKey);
    if (memo) return memo;
    const endpoint = endpoints.get(name);
    if (!endpoint) throw unknownClient(name, endpoints);
    const client = endpoint.client;
    const scopes = scope === undefined ? client.scopes : normalizeScopes(scope);
    const resources = resource === undefined ? client.resources : normalizeResources(resource);
    // T4: the key is (server, client, credentials, DPoP key, resources, sorted scopes), hashed to
    // keep Redis keys short. The credentials part keeps two configurations with the same client_id
    // but different secrets or keys apart (a wrong secret must never be handed a right one's token).
    const [hash, ...olderHashes] = cacheKeys(
      JSON.stringify([
        client.serverId,
        client.clientId,
        client.credentialId,
        client.dpop?.thumbprint ?? null,
        resources,
        scopes,
      ]),
    );
    const ctx: CallContext = { endpoint, name, scopes, resources, hash: hash!, olderHashes };
    if (scope === undefined && resource === undefined) defaultContexts.set(name, ctx);
    else if (memoKey !== undefined) contexts.set(memoKey, ctx);
    return ctx;
  };
}
