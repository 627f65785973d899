// One client's view of its authorization server: discovery, client authentication, DPoP proofs and
// a single client-credentials token request through openid-client. Retries and caching live in
// the manager.
import { AsyncLocalStorage } from 'node:async_hooks';
import * as oidc from 'openid-client';
import type { ResolvedClient } from './config.js';
import { DpopSigner } from './dpop.js';
import { TokenManagerError, type TokenManagerErrorCode, type TokenManagerErrorDetails } from './errors.js';
import type { PrivateJwk } from './types.js';

/** What the manager keeps from a token response: never the refresh token (T1) or an ID token. */
export interface IssuedToken {
  accessToken: string;
  /** `DPoP` for a DPoP client (checked), else `Bearer`. */
  tokenType: 'Bearer' | 'DPoP';
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

function retryAfterSeconds(headers: Headers | undefined, now: number): number | undefined {
  const value = headers?.get('retry-after')?.trim();
  if (!value) return undefined;
  if (/^\d+$/.test(value)) return Number(value);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, (date - now) / 1000);
}

const OAUTH_CODES: Record<string, TokenManagerErrorCode> = {
  invalid_client: 'ERR_TOKEN_INVALID_CLIENT',
  unauthorized_client: 'ERR_TOKEN_UNAUTHORIZED_CLIENT',
  invalid_scope: 'ERR_TOKEN_INVALID_SCOPE',
  use_dpop_nonce: 'ERR_TOKEN_DPOP',
  invalid_dpop_proof: 'ERR_TOKEN_DPOP',
};

/**
 * What happened on the wire during one discovery or token request. Failures are classified from
 * this (the status, the headers, whether the body arrived and parses, what `fetch` threw), never
 * from the class of the error a library wraps them in: a library update cannot turn an outage
 * into a "configuration error" or the reverse.
 */
interface Exchange {
  /** DPoP key whose proof goes on the request (token requests of a DPoP client only). */
  readonly dpop: DpopSigner | undefined;
  /** Status and headers of the response, when one arrived. */
  status?: number;
  headers?: Headers;
  /** A copy of the response body, read only to classify a failure. */
  copy?: Response;
  /** What `fetch` itself threw: a network error, a DNS failure, a reset, a timeout. */
  failure?: unknown;
}

const exchanges = new AsyncLocalStorage<Exchange>();

/** Largest error body read for classification; an error page is never longer in practice. */
const MAX_ERROR_BODY = 64 * 1024;

/** The body as text, or `undefined` when it was cut off, stalled past `timeoutMs`, or was too big. */
async function readBody(response: Response, timeoutMs: number): Promise<string | undefined> {
  const reader = response.body?.getReader();
  if (!reader) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  let timer: NodeJS.Timeout | undefined;
  const stalled = new Promise<'stalled'>((resolve) => {
    timer = setTimeout(() => resolve('stalled'), timeoutMs);
  });
  try {
    while (true) {
      const next = await Promise.race([reader.read(), stalled]);
      if (next === 'stalled') return undefined;
      if (next.done) break;
      size += next.value.byteLength;
      if (size > MAX_ERROR_BODY) return undefined;
      chunks.push(next.value);
    }
    return Buffer.concat(chunks).toString('utf8');
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
    reader.cancel().catch(() => {});
  }
}

function jsonObject(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/** The `error` parameter of a `WWW-Authenticate` challenge (RFC 6750 §3, RFC 9449 §7.1), if any. */
export function challengeErrors(header: string | null | undefined): string[] {
  if (!header) return [];
  return [...header.matchAll(/(?:^|[\s,])error\s*=\s*(?:"([^"]*)"|([^\s,]+))/gi)].map(
    (m) => m[1] ?? m[2] ?? '',
  );
}

/** A short, safe name for a network failure: an errno-style code or the abort reason, never a message. */
function networkCause(error: unknown): string {
  let current: unknown = error;
  for (let depth = 0; depth < 6 && current && typeof current === 'object'; depth++) {
    const { name, code, cause } = current as { name?: unknown; code?: unknown; cause?: unknown };
    if (name === 'TimeoutError') return 'timeout';
    if (typeof code === 'string' && /^[A-Z][A-Z0-9_]{2,40}$/.test(code) && !code.startsWith('OAUTH_'))
      return code;
    if (name === 'AbortError') return 'aborted';
    current = cause;
  }
  return 'network error';
}

/** A library error reduced to its name, message and code: its `cause` may hold a token response. */
function sanitized(error: unknown): Error {
  if (!(error instanceof Error)) return new Error(String(error));
  const copy = new Error(error.message);
  copy.name = error.name;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? Object.assign(copy, { code }) : copy;
}

/**
 * Turns a failed discovery or token request into a {@link TokenManagerError}, by cause:
 * - nothing came back (refused, reset, DNS, timeout) → unavailable (retryable);
 * - 5xx, 429, 408 or `temporarily_unavailable` → unavailable, with `Retry-After`;
 * - a body that is cut off, stalls, or is not JSON (an HTML error page from a proxy, a load
 *   balancer, a WAF, even with 200) → unavailable: something between us and the server answered;
 * - an OAuth error body (or `WWW-Authenticate` error) on a 4xx → the server's decision: final;
 * - a 200 JSON body that is not a usable token response → `ERR_TOKEN_INVALID_RESPONSE` (final).
 * Messages carry the client name, the status and the OAuth error code only: never a body.
 */
async function classifyExchange(
  exchange: Exchange,
  error: unknown,
  client: string,
  now: number,
  discovery: boolean,
  timeoutMs: number,
): Promise<TokenManagerError> {
  if (error instanceof TokenManagerError) return error;
  const what = discovery ? 'discovery' : 'token endpoint';
  const unavailable = (
    detail: string,
    extra: Partial<TokenManagerErrorDetails> = {},
    cause: unknown = sanitized(error),
  ) =>
    new TokenManagerError(
      discovery ? 'ERR_TOKEN_DISCOVERY' : 'ERR_TOKEN_ENDPOINT_UNAVAILABLE',
      `${what} unavailable for client "${client}" (${detail})`,
      { client, cause, ...extra },
    );
  const { status, headers, copy } = exchange;
  if (status === undefined) {
    if (exchange.failure !== undefined) {
      // Keep fetch's own error as the cause: it names the socket problem, never a header or body.
      return unavailable(networkCause(exchange.failure), {}, exchange.failure);
    }
    // Nothing was sent: a local problem (e.g. signing), which retrying cannot fix.
    return new TokenManagerError(
      'ERR_TOKEN_REQUEST_REJECTED',
      `${what} request for client "${client}" could not be sent (${sanitized(error).name})`,
      { client, cause: sanitized(error) },
    );
  }
  const retryAfter = retryAfterSeconds(headers, now);
  const text = copy ? await readBody(copy, timeoutMs) : '';
  if (text === undefined)
    return unavailable(`HTTP ${status}, body cut off or stalled`, { upstreamStatus: status, retryAfter });
  const body = jsonObject(text);
  if (discovery) {
    const detail = status < 300 ? `HTTP ${status}, unusable metadata` : `HTTP ${status}`;
    return unavailable(detail, { upstreamStatus: status, retryAfter });
  }
  const oauthError =
    typeof body?.error === 'string'
      ? body.error
      : challengeErrors(headers?.get('www-authenticate')).find(Boolean);
  if (status >= 500 || status === 429 || status === 408 || oauthError === 'temporarily_unavailable') {
    return unavailable(`HTTP ${status}`, { upstreamStatus: status, oauthError, retryAfter });
  }
  if (status >= 200 && status < 300) {
    if (!body) return unavailable(`HTTP ${status}, not a JSON response`, { upstreamStatus: status });
    return new TokenManagerError(
      'ERR_TOKEN_INVALID_RESPONSE',
      `invalid token response for client "${client}"`,
      {
        client,
        upstreamStatus: status,
        cause: sanitized(error),
      },
    );
  }
  if (!oauthError)
    return unavailable(`HTTP ${status} without an OAuth error`, { upstreamStatus: status, retryAfter });
  const code = OAUTH_CODES[oauthError] ?? 'ERR_TOKEN_REQUEST_REJECTED';
  return new TokenManagerError(code, `token request for client "${client}" rejected: ${oauthError}`, {
    client,
    upstreamStatus: status,
    oauthError,
    cause: sanitized(error),
  });
}

/**
 * Wraps anything a token request threw outside {@link TokenEndpoint} (it classifies its own) into
 * a {@link TokenManagerError}: unexpected, so retryable.
 */
export function asTokenManagerError(error: unknown, client: string): TokenManagerError {
  if (error instanceof TokenManagerError) return error;
  return new TokenManagerError(
    'ERR_TOKEN_ENDPOINT_UNAVAILABLE',
    `token request failed for client "${client}" (${networkCause(error)})`,
    { client, cause: sanitized(error) },
  );
}

/** The token endpoint of one configured client. */
export class TokenEndpoint {
  readonly client: ResolvedClient;
  /** The client's DPoP key, when configured: proofs on token requests, nonces per server. */
  readonly dpop: DpopSigner | undefined;
  readonly #fetch: oidc.CustomFetch;
  readonly #timeout: number;
  readonly #now: () => number;
  #configuration: Promise<oidc.Configuration> | undefined;
  /** Cleared when the server rejects an assertion with `typ` and accepts one without (7523bis fallback). */
  #sendTyp: boolean;
  #typFallbackTried = false;

  constructor(client: ResolvedClient, fetchImpl: typeof fetch, timeoutSeconds: number, now: () => number) {
    this.client = client;
    this.dpop = client.dpop ? new DpopSigner(client.dpop) : undefined;
    this.#fetch = async (url, options) => {
      const exchange = exchanges.getStore();
      let init = options as RequestInit;
      if (exchange?.dpop) {
        // RFC 9449 §5: a fresh proof per token request (a retry gets a new one, with any new nonce).
        const proof = await exchange.dpop.proof(options.method, url);
        init = { ...init, headers: { ...options.headers, dpop: proof } };
      }
      let response: Response;
      try {
        response = await fetchImpl(url, init);
      } catch (error) {
        if (exchange) exchange.failure = error;
        throw error;
      }
      if (exchange) {
        exchange.status = response.status;
        exchange.headers = response.headers;
        exchange.copy = response.clone();
      }
      // §8: the server may hand out (or rotate) its nonce on any response, not only on errors.
      const nonce = response.headers.get('dpop-nonce');
      if (nonce && this.dpop) this.dpop.rememberNonce(url, nonce);
      return response;
    };
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

  /** Runs `operation` with a fresh exchange record; a failure comes back classified, with the record. */
  async #exchange<T>(
    operation: () => Promise<T>,
    discovery: boolean,
  ): Promise<{ ok: true; value: T } | { ok: false; error: TokenManagerError; exchange: Exchange }> {
    const exchange: Exchange = { dpop: discovery ? undefined : this.dpop };
    try {
      return { ok: true, value: await exchanges.run(exchange, operation) };
    } catch (caught) {
      const error = await classifyExchange(
        exchange,
        caught,
        this.client.name,
        this.#now(),
        discovery,
        this.#timeout * 1000,
      );
      return { ok: false, error, exchange };
    } finally {
      // The copy was only kept to classify a failure; free its buffer.
      exchange.copy?.body?.cancel().catch(() => {});
    }
  }

  /** Discovers (once; a failure is not kept, so the next call tries again) and builds the configuration. */
  configuration(): Promise<oidc.Configuration> {
    this.#configuration ??= this.#exchange(() => this.#configure(), true).then((result) => {
      if (result.ok) return result.value;
      this.#configuration = undefined;
      throw result.error;
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
    let nonceRetried = false;
    let typRetry = false;
    let response: oidc.TokenEndpointResponse;
    while (true) {
      const result = await this.#exchange(
        () => oidc.clientCredentialsGrant(configuration, parameters),
        false,
      );
      if (result.ok) {
        response = result.value;
        break;
      }
      const { error, exchange } = result;
      if (
        error.oauthError === 'use_dpop_nonce' &&
        this.dpop &&
        !nonceRetried &&
        exchange.headers?.has('dpop-nonce')
      ) {
        // RFC 9449 §8: the server wants the nonce it just sent (remembered by the fetch wrapper).
        // Retry once with it, never in a loop: a second demand is an error.
        nonceRetried = true;
        continue;
      }
      if (error.code === 'ERR_TOKEN_INVALID_CLIENT' && this.#sendTyp && !this.#typFallbackTried) {
        // 7523bis: some servers reject an assertion `typ` they do not know. Try once without it.
        this.#typFallbackTried = true;
        this.#sendTyp = false;
        typRetry = true;
        continue;
      }
      if (typRetry) this.#sendTyp = true;
      throw error;
    }
    const tokenType = response.token_type; // lower-cased by openid-client
    if (this.dpop && tokenType !== 'dpop') {
      // T9: the proof was ignored; a Bearer token here would silently lose the binding.
      throw new TokenManagerError(
        'ERR_TOKEN_DPOP',
        `token response for client "${this.client.name}" has token_type ${JSON.stringify(response.token_type)}, expected DPoP (is DPoP enabled for this client at the server?)`,
        { client: this.client.name, upstreamStatus: 200 },
      );
    }
    if (!this.dpop && tokenType !== 'bearer') {
      throw new TokenManagerError(
        'ERR_TOKEN_INVALID_RESPONSE',
        `token response for client "${this.client.name}" has token_type ${JSON.stringify(response.token_type)}, expected Bearer`,
        { client: this.client.name, upstreamStatus: 200 },
      );
    }
    // Deliberately copy only these fields: a refresh_token (T1) or id_token is dropped here.
    return {
      accessToken: response.access_token,
      tokenType: this.dpop ? 'DPoP' : 'Bearer',
      expiresIn: typeof response.expires_in === 'number' ? response.expires_in : undefined,
      scope: typeof response.scope === 'string' ? response.scope : undefined,
    };
  }
}
