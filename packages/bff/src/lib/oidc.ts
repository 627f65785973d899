// OpenID provider metadata and the openid-client Configuration: discovered lazily on first use,
// cached, and retried after a failure (a provider that is down at start-up must not brick the BFF).
import { type CryptoKey, importJWK, type JWK } from 'jose';
import * as client from 'openid-client';
import type { ResolvedBffConfig } from './config.js';
import { checkDpopSupport } from './dpop/authorization-server.js';
import { BffError, describeError } from './errors.js';
import type { FetchLike } from './http/fetch.js';
import { attachIdTokenPolicy, resolveIdTokenAlgorithms } from './id-token.js';
import { createJwksSource } from './jwks.js';
import type { Logger } from './logger.js';
import { classifyTokenError } from './refresh/failure.js';

const isJwk = (key: CryptoKey | JWK): key is JWK => typeof (key as JWK).kty === 'string';

/** How long a failed discovery is remembered before the next attempt (seconds). */
const FAILURE_COOLDOWN = 2;

/** Returns a function that yields the cached Configuration, discovering it on first call. */
export function createOidcConfiguration(
  config: ResolvedBffConfig,
  fetchImpl: FetchLike | undefined,
  logger: Logger,
  clock: () => number,
): () => Promise<client.Configuration> {
  let cached: Promise<client.Configuration> | undefined;
  let failedAt = 0;

  const discover = async (): Promise<client.Configuration> => {
    let auth: client.ClientAuth;
    if (config.clientAuth.method === 'private_key_jwt') {
      const key = config.clientAuth.key;
      if (isJwk(key)) {
        const imported = await importJWK(key, key.alg);
        if (imported instanceof Uint8Array) {
          throw new BffError('ERR_BFF_CONFIGURATION', 'clientPrivateKey must be an asymmetric private key');
        }
        auth = client.PrivateKeyJwt(key.kid ? { key: imported, kid: key.kid } : imported);
      } else {
        auth = client.PrivateKeyJwt(key);
      }
    } else {
      auth = client.ClientSecretBasic(config.clientAuth.secret);
    }

    const issuerUrl = new URL(config.issuer);
    const insecure = issuerUrl.protocol === 'http:';
    // No enableNonRepudiationChecks: ID-token signatures are checked with our own key source
    // (id-token.ts, jwks.ts), which refetches the keys at once on an unknown `kid` (L10a).
    const execute: ((c: client.Configuration) => void)[] = insecure ? [client.allowInsecureRequests] : [];

    let discovered: client.Configuration;
    try {
      discovered = await client.discovery(issuerUrl, config.clientId, undefined, auth, {
        execute,
        timeout: config.httpTimeout,
        ...(fetchImpl ? { [client.customFetch]: fetchImpl as client.CustomFetch } : {}),
      });
    } catch (err) {
      if (err instanceof client.ClientError && err.code === 'OAUTH_JSON_ATTRIBUTE_COMPARISON_FAILED') {
        throw new BffError(
          'ERR_BFF_CONFIGURATION',
          'discovered issuer does not match the configured issuer',
          {
            cause: err,
          },
        );
      }
      throw new BffError('ERR_BFF_IDP_UNAVAILABLE', 'OpenID provider discovery failed', {
        cause: err,
        retryAfter: FAILURE_COOLDOWN,
      });
    }

    const metadata = discovered.serverMetadata();
    // L11: exact match, no normalization (openid-client compares normalized URLs and knows vendor quirks).
    if (metadata.issuer !== config.issuer) {
      throw new BffError('ERR_BFF_CONFIGURATION', 'discovered issuer does not match the configured issuer');
    }
    // L2: PKCE S256 only. A provider advertising methods without S256 is refused.
    const pkce = metadata.code_challenge_methods_supported;
    if (Array.isArray(pkce) && !pkce.includes('S256')) {
      throw new BffError('ERR_BFF_CONFIGURATION', 'the provider does not support PKCE S256');
    }
    const responseTypes = metadata.response_types_supported;
    if (Array.isArray(responseTypes) && !responseTypes.includes('code')) {
      throw new BffError('ERR_BFF_CONFIGURATION', 'the provider does not support response_type=code');
    }
    if (typeof metadata.jwks_uri !== 'string') {
      throw new BffError('ERR_BFF_CONFIGURATION', 'the provider metadata has no jwks_uri');
    }
    if (config.dpop) checkDpopSupport(metadata, config.dpop.alg, logger);

    // L17: one accepted `alg` set for ID tokens (login, refresh) and logout tokens. openid-client's own
    // alg check reads the registered alg, else the advertised list: the Configuration is rebuilt so that
    // list is exactly our set (no `none`, no HS*).
    const algorithms = resolveIdTokenAlgorithms(
      config.idTokenSignedResponseAlg,
      metadata.id_token_signing_alg_values_supported,
    );
    const { supportsPKCE: _helper, ...serverMetadata } = metadata;
    const configuration = new client.Configuration(
      { ...serverMetadata, id_token_signing_alg_values_supported: algorithms },
      config.clientId,
      config.idTokenSignedResponseAlg
        ? { id_token_signed_response_alg: config.idTokenSignedResponseAlg }
        : undefined,
      auth,
    );
    for (const step of execute) step(configuration);
    configuration.timeout = config.httpTimeout;
    if (fetchImpl) configuration[client.customFetch] = fetchImpl as client.CustomFetch;
    attachIdTokenPolicy(configuration, {
      algorithms,
      keys: createJwksSource({
        uri: new URL(metadata.jwks_uri),
        fetch: fetchImpl ?? globalThis.fetch,
        timeout: config.httpTimeout,
        clock,
        logger,
      }),
    });
    return configuration;
  };

  return () => {
    if (cached) return cached;
    if (failedAt && clock() - failedAt < FAILURE_COOLDOWN * 1000) {
      return Promise.reject(
        new BffError('ERR_BFF_IDP_UNAVAILABLE', 'OpenID provider discovery failed recently', {
          retryAfter: FAILURE_COOLDOWN - (clock() - failedAt) / 1000,
        }),
      );
    }
    const attempt = discover();
    cached = attempt;
    attempt.catch((err: unknown) => {
      logger.error({ err: describeError(err) }, 'bff: OpenID provider discovery failed');
      failedAt = clock();
      if (cached === attempt) cached = undefined;
    });
    return attempt;
  };
}

/**
 * Sorts a login-callback failure: the IdP or network misbehaving (`transient`), a token response the
 * BFF cannot use (`response`: wrong token_type, missing tokens, not JSON — L8), or a response that
 * failed validation (`validation`: ID token signature/claims, state, iss — L5, L9).
 */
export function classifyCallbackError(err: unknown): 'transient' | 'response' | 'validation' {
  const kind = classifyTokenError(err);
  if (kind === 'transient') return 'transient';
  if (kind !== 'response' || !(err instanceof client.ClientError)) return 'validation';
  if (err.code !== 'OAUTH_INVALID_RESPONSE' && err.code !== 'OAUTH_UNSUPPORTED_OPERATION') return 'response';
  const cause = (err as { cause?: unknown }).cause;
  const text = `${err.message} ${cause instanceof Error ? cause.message : ''}`;
  return /token_type|"(?:id|access)_token" property/.test(text) ? 'response' : 'validation';
}

// Token-endpoint failures are classified by cause in refresh/failure.ts (SECURITY R5a); re-exported
// here for the login callback, which imports it from this module.
export { classifyTokenError };
