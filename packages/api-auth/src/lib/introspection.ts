import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { ResolvedConfig } from './config.js';
import { withDeadline } from './deadline.js';
import { AccessTokenError } from './errors.js';
import type { ResolvedIntrospection } from './introspection-config.js';
import type { IssuerMetadata } from './metadata.js';
import type { AccessTokenAuth, AccessTokenClaims } from './types.js';

/** Form-urlencodes a client credential the way RFC 6749 §2.3.1 asks for Basic authentication. */
function formEncode(value: string): string {
  return encodeURIComponent(value).replace(/%20/g, '+');
}

const ACCESS_TOKEN_TYPES = new Set(['bearer', 'dpop']);

function invalid(description: string): AccessTokenError {
  return new AccessTokenError('ERR_API_AUTH_INVALID_TOKEN', description);
}

function unavailable(description: string, cause?: unknown): AccessTokenError {
  return new AccessTokenError('ERR_API_AUTH_INTROSPECTION_UNAVAILABLE', description, { cause });
}

/**
 * RFC 7662 introspection with this API's own client credentials. Active results are cached under a
 * hash of the token (never the token itself) for at most `cacheMaxAge` and never past `exp`; every
 * failure to get an answer is a 503.
 */
export function createIntrospector(
  config: ResolvedConfig,
  options: ResolvedIntrospection,
  metadata: () => Promise<IssuerMetadata>,
  now: () => number,
): (token: string) => Promise<AccessTokenAuth> {
  // Each result lives until its own deadline, on the validator's clock (checked on every read).
  const cache = new LRUCache<string, AccessTokenAuth>({
    max: options.maxCacheEntries,
    ttlResolution: 0,
    perf: { now },
  });
  const inFlight = new Map<string, Promise<AccessTokenAuth>>();
  const basic =
    options.authMethod === 'client_secret_basic'
      ? `Basic ${Buffer.from(`${formEncode(options.clientId)}:${formEncode(options.clientSecret)}`).toString('base64')}`
      : undefined;

  const endpoint = async (): Promise<string> => {
    if (options.endpoint !== undefined) return options.endpoint;
    const found = (await metadata()).introspection_endpoint;
    if (found === undefined) {
      throw new AccessTokenError('ERR_API_AUTH_CONFIG', 'the issuer metadata has no introspection_endpoint');
    }
    return found;
  };

  const call = async (token: string): Promise<Record<string, unknown>> => {
    let url: string;
    try {
      url = await endpoint();
    } catch (cause) {
      if (cause instanceof AccessTokenError && cause.code === 'ERR_API_AUTH_CONFIG') throw cause;
      throw unavailable('the introspection endpoint cannot be discovered', cause);
    }
    const body = new URLSearchParams({ token, token_type_hint: 'access_token' });
    const headers: Record<string, string> = {
      accept: 'application/json',
      'content-type': 'application/x-www-form-urlencoded',
    };
    if (basic) headers.authorization = basic;
    else {
      body.set('client_id', options.clientId);
      body.set('client_secret', options.clientSecret);
    }
    let response: Response;
    try {
      response = await config.fetch(url, {
        method: 'POST',
        headers,
        body,
        redirect: 'manual',
        signal: AbortSignal.timeout(config.timeout * 1000),
      });
    } catch (cause) {
      throw unavailable('the introspection endpoint did not answer', cause);
    }
    if (response.status !== 200) {
      await response.body?.cancel();
      config.logger.warn({ status: response.status }, 'introspection endpoint answered an error');
      throw unavailable('the introspection endpoint answered an error');
    }
    let json: unknown;
    try {
      json = await response.json();
    } catch (cause) {
      throw unavailable('the introspection response is not JSON', cause);
    }
    if (
      typeof json !== 'object' ||
      json === null ||
      typeof (json as { active?: unknown }).active !== 'boolean'
    ) {
      throw unavailable('the introspection response has no boolean "active"');
    }
    return json as Record<string, unknown>;
  };

  const toAuth = (doc: Record<string, unknown>): AccessTokenAuth => {
    if (doc.active !== true) throw invalid('the access token is not active');
    const { active: _active, ...rest } = doc;
    // RFC 7662 §2.2 lets the AS say this is some other kind of token; only access tokens pass
    // (Bearer, or DPoP per RFC 9449 §6.2). Whether a DPoP-bound token (`cnf`) was presented the
    // right way is decided by the validator per request, since one cached result serves both.
    if (
      rest.token_type !== undefined &&
      (typeof rest.token_type !== 'string' || !ACCESS_TOKEN_TYPES.has(rest.token_type.toLowerCase()))
    ) {
      throw invalid('the token is not a Bearer or DPoP access token');
    }
    if (rest.cnf !== undefined && (typeof rest.cnf !== 'object' || rest.cnf === null)) {
      throw invalid('the token has an invalid cnf');
    }
    if (rest.iss !== undefined && rest.iss !== config.issuer)
      throw invalid('the token was issued by another issuer');
    const aud = rest.aud;
    const audOk =
      typeof aud === 'string' ? aud === config.audience : Array.isArray(aud) && aud.includes(config.audience);
    if (!audOk) throw invalid('the token is not meant for this API (aud)');
    if (typeof rest.exp !== 'number' || !Number.isFinite(rest.exp))
      throw invalid('the token has no expiry (exp)');
    if (rest.exp * 1000 <= now() - config.clockTolerance * 1000) throw invalid('the access token expired');
    if (typeof rest.client_id !== 'string' || rest.client_id === '')
      throw invalid('the token has no client_id');
    if (rest.sub !== undefined && (typeof rest.sub !== 'string' || rest.sub === '')) {
      throw invalid('the token has an invalid sub');
    }
    if (rest.scope !== undefined && typeof rest.scope !== 'string')
      throw invalid('the token has an invalid scope');
    const claims = {
      ...rest,
      iss: config.issuer,
      // RFC 9068 §2.2: a token without a resource owner has the client as its subject.
      sub: (rest.sub as string | undefined) ?? rest.client_id,
    } as AccessTokenClaims;
    return {
      kind: config.tokenKind(claims),
      claims,
      scopes: claims.scope ? claims.scope.split(' ').filter(Boolean) : [],
      source: 'introspection',
    };
  };

  const timeoutMs = config.timeout * 1000;
  const late = () => unavailable('the introspection endpoint did not answer in time');

  return async (token) => {
    const key = createHash('sha256').update(token).digest('base64url');
    const hit = cache.get(key);
    if (hit) return hit;
    // Each caller waits at most `timeout` in total (discovery plus the call), even when it joins a
    // call another request started; the shared call itself still ends at its own timeout.
    const running = inFlight.get(key);
    if (running) return withDeadline(running, timeoutMs, late);
    const pending = call(token)
      .then((doc) => {
        const auth = toAuth(doc);
        const ttl = Math.floor(Math.min(options.cacheMaxAge * 1000, auth.claims.exp * 1000 - now()));
        if (ttl > 0) cache.set(key, auth, { ttl });
        return auth;
      })
      .finally(() => inFlight.delete(key));
    inFlight.set(key, pending);
    return withDeadline(pending, timeoutMs, late);
  };
}
