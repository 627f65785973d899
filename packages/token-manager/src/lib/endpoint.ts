// One client's view of its authorization server: discovery, client authentication and a single
// client-credentials token request through openid-client. Retries and caching live in the manager.
import * as oidc from 'openid-client';
import type { ResolvedClient } from './config.js';
import { TokenManagerError, type TokenManagerErrorCode } from './errors.js';
import type { PrivateJwk } from './types.js';

/** What the manager keeps from a token response: never the refresh token (T1) or an ID token. */
export interface IssuedToken {
  accessToken: string;
  /** `expires_in` in seconds, when the server sent one. */
  expiresIn: number | undefined;
  /** The granted scope, when the server sent one. */
  scope: string | undefined;
}

type CryptoKey = oidc.CryptoKey;

/** Web Crypto import parameters for a private JWK, from its `kty`/`crv`/`alg`. */
function importParams(jwk: PrivateJwk): { name: string; hash?: string; namedCurve?: string } {
  const alg = typeof jwk.alg === 'string' ? jwk.alg : undefined;
  switch (jwk.kty) {
    case 'RSA': {
      const bits = alg?.slice(2) ?? '256';
      return { name: alg?.startsWith('PS') ? 'RSA-PSS' : 'RSASSA-PKCS1-v1_5', hash: `SHA-${bits}` };
    }
    case 'EC':
      return { name: 'ECDSA', namedCurve: typeof jwk.crv === 'string' ? jwk.crv : 'P-256' };
    case 'OKP':
      return { name: 'Ed25519' };
    default:
      throw new TypeError(
        `createTokenManager: unsupported private JWK kty ${JSON.stringify(jwk.kty)} (use RSA, EC or OKP)`,
      );
  }
}

async function toPrivateKey(input: NonNullable<ResolvedClient['privateKey']>): Promise<oidc.PrivateKey> {
  if ('kty' in input && typeof input.kty === 'string') {
    const jwk = input as PrivateJwk;
    const { kid, ...material } = jwk;
    const key = await crypto.subtle.importKey('jwk', material, importParams(jwk), false, ['sign']);
    return kid === undefined ? { key } : { key, kid };
  }
  if ('key' in input && typeof input.key === 'object') return input as oidc.PrivateKey;
  return { key: input as CryptoKey };
}

function retryAfterSeconds(response: Response | undefined, now: number): number | undefined {
  const value = response?.headers.get('retry-after');
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, (date - now) / 1000);
}

const OAUTH_CODES: Record<string, TokenManagerErrorCode> = {
  invalid_client: 'ERR_TOKEN_INVALID_CLIENT',
  unauthorized_client: 'ERR_TOKEN_UNAUTHORIZED_CLIENT',
  invalid_scope: 'ERR_TOKEN_INVALID_SCOPE',
};

/**
 * Maps whatever openid-client (or fetch) threw into a {@link TokenManagerError}. The message has
 * the client name and OAuth error code only: `error_description` is server free text and stays in
 * `cause`.
 */
export function classify(error: unknown, client: string, now: number, discovery: boolean): TokenManagerError {
  if (error instanceof TokenManagerError) return error;
  const base = { client, cause: error };
  if (error instanceof oidc.ResponseBodyError || error instanceof oidc.WWWAuthenticateChallengeError) {
    const status = error.status;
    const oauthError =
      error instanceof oidc.ResponseBodyError
        ? error.error
        : error.cause.find((challenge) => typeof challenge.parameters.error === 'string')?.parameters.error;
    const retryAfter = retryAfterSeconds(error.response, now);
    if (status >= 500 || status === 429 || oauthError === 'temporarily_unavailable') {
      return new TokenManagerError(
        'ERR_TOKEN_ENDPOINT_UNAVAILABLE',
        `token endpoint unavailable for client "${client}" (HTTP ${status})`,
        { ...base, upstreamStatus: status, oauthError, retryAfter },
      );
    }
    const code = (oauthError && OAUTH_CODES[oauthError]) || 'ERR_TOKEN_REQUEST_REJECTED';
    return new TokenManagerError(
      code,
      `token request for client "${client}" rejected: ${oauthError ?? `HTTP ${status}`}`,
      { ...base, upstreamStatus: status, oauthError },
    );
  }
  if (error instanceof oidc.ClientError && error.cause instanceof Response && error.cause.status !== 200) {
    // A non-200 without an OAuth error body: 5xx pages, a 429 in text, a proxy's HTML error.
    const response = error.cause;
    const status = response.status;
    const retryAfter = retryAfterSeconds(response, now);
    if (status < 500 && status !== 429 && status !== 408) {
      return new TokenManagerError(
        'ERR_TOKEN_REQUEST_REJECTED',
        `token request for client "${client}" rejected: HTTP ${status}`,
        {
          ...base,
          upstreamStatus: status,
        },
      );
    }
    return new TokenManagerError(
      discovery ? 'ERR_TOKEN_DISCOVERY' : 'ERR_TOKEN_ENDPOINT_UNAVAILABLE',
      `${discovery ? 'discovery' : 'token endpoint'} unavailable for client "${client}" (HTTP ${status})`,
      { ...base, upstreamStatus: status, retryAfter },
    );
  }
  if (
    !discovery &&
    error instanceof oidc.ClientError &&
    // No code: openid-client wrapped something unexpected (e.g. a custom fetch's own error).
    error.code !== undefined &&
    error.code !== 'OAUTH_TIMEOUT' &&
    error.code !== 'OAUTH_ABORT' &&
    error.code !== 'OAUTH_HTTP_REQUEST_FORBIDDEN' &&
    error.code !== 'OAUTH_REQUEST_PROTOCOL_FORBIDDEN'
  ) {
    // A 200 that is not a usable token response. The lower-level error carries the parsed body
    // (`cause.body`), i.e. the access token and any refresh token: keep its message and code only.
    const sanitized = Object.assign(new Error(error.message), { name: error.name, code: error.code });
    return new TokenManagerError(
      'ERR_TOKEN_INVALID_RESPONSE',
      `invalid token response for client "${client}"`,
      {
        client,
        cause: sanitized,
      },
    );
  }
  // Network errors (fetch's TypeError), timeouts, aborted requests, unexpected discovery documents:
  // a later attempt may succeed.
  return new TokenManagerError(
    discovery ? 'ERR_TOKEN_DISCOVERY' : 'ERR_TOKEN_ENDPOINT_UNAVAILABLE',
    `${discovery ? 'discovery' : 'token request'} failed for client "${client}": ${
      error instanceof oidc.ClientError && error.code ? error.code : 'network error or timeout'
    }`,
    base,
  );
}

/** The token endpoint of one configured client. */
export class TokenEndpoint {
  readonly client: ResolvedClient;
  readonly #fetch: oidc.CustomFetch;
  readonly #timeout: number;
  readonly #now: () => number;
  #configuration: Promise<oidc.Configuration> | undefined;
  /** Cleared when the server rejects an assertion with `typ` and accepts one without (7523bis fallback). */
  #sendTyp: boolean;
  #typFallbackTried = false;

  constructor(client: ResolvedClient, fetchImpl: typeof fetch, timeoutSeconds: number, now: () => number) {
    this.client = client;
    this.#fetch = (url, options) => fetchImpl(url, options as RequestInit);
    this.#timeout = timeoutSeconds;
    this.#now = now;
    this.#sendTyp = client.authMethod === 'private_key_jwt' && client.assertionTyp !== undefined;
  }

  async #clientAuth(): Promise<oidc.ClientAuth> {
    const c = this.client;
    if (c.authMethod === 'client_secret_basic') return oidc.ClientSecretBasic(c.clientSecret);
    if (c.authMethod === 'client_secret_post') return oidc.ClientSecretPost(c.clientSecret);
    const key = await toPrivateKey(c.privateKey!);
    return oidc.PrivateKeyJwt(key, {
      [oidc.modifyAssertion]: (header, payload) => {
        if (this.#sendTyp && c.assertionTyp) header.typ = c.assertionTyp;
        // oauth4webapi sets `aud` to the issuer (a single string) by default (T2).
        if (c.assertionAudience === 'token_endpoint') payload.aud = this.#tokenEndpointUrl;
      },
    });
  }

  #tokenEndpointUrl: string | undefined;

  /** Discovers (once; a failure is not kept, so the next call tries again) and builds the configuration. */
  configuration(): Promise<oidc.Configuration> {
    this.#configuration ??= this.#configure().catch((error: unknown) => {
      this.#configuration = undefined;
      throw classify(error, this.client.name, this.#now(), true);
    });
    return this.#configuration;
  }

  async #configure(): Promise<oidc.Configuration> {
    const c = this.client;
    const auth = await this.#clientAuth();
    let configuration: oidc.Configuration;
    if (c.tokenEndpoint) {
      const server: oidc.ServerMetadata = { issuer: c.serverId, token_endpoint: c.tokenEndpoint.href };
      configuration = new oidc.Configuration(server, c.clientId, undefined, auth);
      configuration[oidc.customFetch] = this.#fetch;
      configuration.timeout = this.#timeout;
      if (c.tokenEndpoint.protocol === 'http:') oidc.allowInsecureRequests(configuration);
    } else {
      const issuer = c.issuer!;
      configuration = await oidc.discovery(issuer, c.clientId, undefined, auth, {
        [oidc.customFetch]: this.#fetch,
        timeout: this.#timeout,
        execute: issuer.protocol === 'http:' ? [oidc.allowInsecureRequests] : [],
      });
      const endpoint = configuration.serverMetadata().token_endpoint;
      if (!endpoint) {
        throw new TokenManagerError(
          'ERR_TOKEN_DISCOVERY',
          `issuer of client "${c.name}" has no token_endpoint`,
          {
            client: c.name,
          },
        );
      }
      if (new URL(endpoint).protocol === 'http:' && issuer.protocol !== 'http:') {
        throw new TokenManagerError(
          'ERR_TOKEN_DISCOVERY',
          `token_endpoint of client "${c.name}" is not https`,
          {
            client: c.name,
          },
        );
      }
    }
    this.#tokenEndpointUrl = configuration.serverMetadata().token_endpoint;
    return configuration;
  }

  /** One client-credentials token request (RFC 6749 §4.4). Throws {@link TokenManagerError}. */
  async request(scopes: readonly string[], resources: readonly string[]): Promise<IssuedToken> {
    const configuration = await this.configuration();
    const parameters = new URLSearchParams(this.client.parameters);
    if (scopes.length > 0) parameters.set('scope', scopes.join(' '));
    for (const resource of resources) parameters.append('resource', resource);
    let response: oidc.TokenEndpointResponse;
    try {
      response = await oidc.clientCredentialsGrant(configuration, parameters);
    } catch (error) {
      const classified = classify(error, this.client.name, this.#now(), false);
      if (classified.code === 'ERR_TOKEN_INVALID_CLIENT' && this.#sendTyp && !this.#typFallbackTried) {
        // 7523bis: some servers reject an assertion `typ` they do not know. Try once without it.
        this.#typFallbackTried = true;
        this.#sendTyp = false;
        try {
          const result = await this.request(scopes, resources);
          return result;
        } catch (retryError) {
          this.#sendTyp = true;
          throw retryError;
        }
      }
      throw classified;
    }
    // T8/T9 seam: only Bearer is accepted until DPoP is implemented.
    if (response.token_type !== 'bearer') {
      throw new TokenManagerError(
        'ERR_TOKEN_INVALID_RESPONSE',
        `token response for client "${this.client.name}" has token_type ${JSON.stringify(response.token_type)}, expected Bearer`,
        { client: this.client.name },
      );
    }
    // Deliberately copy only these fields: a refresh_token (T1) or id_token is dropped here.
    return {
      accessToken: response.access_token,
      expiresIn: typeof response.expires_in === 'number' ? response.expires_in : undefined,
      scope: typeof response.scope === 'string' ? response.scope : undefined,
    };
  }
}
