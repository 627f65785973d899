import type { ResolvedConfig } from './config.js';
import { AccessTokenError } from './errors.js';
import { checkUrl } from './option-checks.js';

/** The parts of the authorization server's metadata this package uses. */
export interface IssuerMetadata {
  readonly issuer: string;
  readonly jwks_uri: string | undefined;
  readonly introspection_endpoint: string | undefined;
}

/** After a failed discovery, requests within this window fail fast instead of each calling the AS. */
const FAILURE_BACKOFF_MS = 1000;

/** The two well-known locations: OIDC Discovery §4 (appended) and RFC 8414 §3.1 (inserted). */
function wellKnownUrls(issuer: string): string[] {
  const url = new URL(issuer);
  const path = url.pathname === '/' ? '' : url.pathname.replace(/\/$/, '');
  return [
    `${url.origin}${path}/.well-known/openid-configuration`,
    `${url.origin}/.well-known/oauth-authorization-server${path}`,
  ];
}

async function fetchJson(config: ResolvedConfig, url: string): Promise<{ status: number; body: unknown }> {
  const response = await config.fetch(url, {
    headers: { accept: 'application/json' },
    redirect: 'manual',
    signal: AbortSignal.timeout(config.timeout * 1000),
  });
  if (response.status !== 200) {
    await response.body?.cancel();
    return { status: response.status, body: undefined };
  }
  return { status: 200, body: await response.json() };
}

async function discover(config: ResolvedConfig): Promise<IssuerMetadata> {
  let body: unknown;
  let lastStatus = 0;
  for (const url of wellKnownUrls(config.issuer)) {
    const result = await fetchJson(config, url);
    lastStatus = result.status;
    if (result.status === 200) {
      body = result.body;
      break;
    }
    // Only "not here" moves on to the RFC 8414 location; anything else is an outage.
    if (result.status !== 404) break;
  }
  if (body === undefined) throw new Error(`issuer metadata answered HTTP ${lastStatus}`);
  if (typeof body !== 'object' || body === null) throw new Error('issuer metadata is not a JSON object');
  const doc = body as Record<string, unknown>;
  // No issuer at all is not metadata (an error page in JSON, a captive proxy): an outage, retried.
  if (typeof doc.issuer !== 'string') throw new Error('issuer metadata has no issuer');
  if (doc.issuer !== config.issuer) {
    // RFC 8414 §3.3 / OIDC Discovery §4.3: a mismatch is a misconfiguration or an attack, never retried as an outage.
    throw new AccessTokenError('ERR_API_AUTH_CONFIG', 'the issuer metadata names a different issuer');
  }
  const allow = config.dangerouslyAllowInsecureHttp;
  const optionalUrl = (name: string): string | undefined => {
    const value = doc[name];
    if (value === undefined) return undefined;
    try {
      return checkUrl(value, name, allow);
    } catch (cause) {
      throw new AccessTokenError('ERR_API_AUTH_CONFIG', `the issuer metadata has an unusable ${name}`, {
        cause,
      });
    }
  };
  return Object.freeze({
    issuer: config.issuer,
    jwks_uri: optionalUrl('jwks_uri'),
    introspection_endpoint: optionalUrl('introspection_endpoint'),
  });
}

/**
 * Lazily discovers the issuer's metadata once (single-flight) so an API can start before its
 * authorization server. Failures are not cached beyond a short backoff; a mismatched `issuer` is.
 */
export function createMetadataSource(config: ResolvedConfig): () => Promise<IssuerMetadata> {
  let result: Promise<IssuerMetadata> | undefined;
  let failedAt = 0;
  let lastFailure: AccessTokenError | undefined;

  return () => {
    if (result) return result;
    const now = Date.now();
    if (lastFailure && now - failedAt < FAILURE_BACKOFF_MS) return Promise.reject(lastFailure);
    const pending = discover(config).catch((cause: unknown) => {
      const error =
        cause instanceof AccessTokenError
          ? cause
          : new AccessTokenError('ERR_API_AUTH_KEYS_UNAVAILABLE', 'the issuer metadata cannot be fetched', {
              cause,
            });
      config.logger.warn(
        { code: error.code, reason: cause instanceof Error ? cause.message : String(cause) },
        'issuer metadata discovery failed',
      );
      if (error.code !== 'ERR_API_AUTH_CONFIG') {
        result = undefined;
        failedAt = Date.now();
        lastFailure = error;
      }
      throw error;
    });
    result = pending;
    return pending;
  };
}
