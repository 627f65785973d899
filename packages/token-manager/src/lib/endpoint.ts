// One client's view of its authorization server: discovery, client authentication, DPoP proofs and
// a single client-credentials token request through openid-client. Failures are classified in
// exchange-failure.ts; retries live in token-request.ts, caching in manager.ts and renewal.ts.
import { AsyncLocalStorage } from 'node:async_hooks';
import * as oidc from 'openid-client';
import type { ResolvedClient } from './client-config.js';
import { DpopSigner } from './dpop.js';
import { TokenManagerError } from './errors.js';
import { classifyExchange, type Exchange } from './exchange-failure.js';
import { toPrivateKey } from './private-key.js';

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

/** The exchange of the request under way, filled in by the fetch wrapper of each endpoint. */
const exchanges = new AsyncLocalStorage<Exchange>();

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
