// Client-credentials tokens for the BFF's own client (remote APIs with token type `client`), through
// @gatehouse/token-manager: cached per (scope, resource) until `expires_in` minus a margin,
// single-flight, backed off on failures. Hosts can replace it with the `getClientAccessToken` option.
import { createTokenManager, type PrivateJwk, type TokenClientOptions } from '@gatehouse/token-manager';
import type { CryptoKey } from 'jose';
import type { ResolvedBffConfig } from './config.js';
import { BffError } from './errors.js';
import type { FetchLike } from './http/fetch.js';
import type { Logger } from './logger.js';

/** Returns a getClientAccessToken function for the BFF's client. */
export function createClientTokenSource(
  config: ResolvedBffConfig,
  fetchImpl: FetchLike | undefined,
  clock: () => number,
  logger: Logger,
): (options?: { resource?: string; scope?: string }) => Promise<string> {
  const auth: Partial<TokenClientOptions> =
    config.clientAuth.method === 'private_key_jwt'
      ? {
          clientAuthentication: 'private_key_jwt',
          privateKey: config.clientAuth.key as CryptoKey | PrivateJwk,
        }
      : { clientAuthentication: 'client_secret_basic', clientSecret: config.clientAuth.secret };
  const manager = createTokenManager({
    clients: {
      bff: {
        issuer: config.issuer,
        clientId: config.clientId,
        ...auth,
        ...(config.allowInsecureIssuer ? { dangerouslyAllowInsecureHttp: true } : {}),
      },
    },
    timeout: config.httpTimeout,
    clock,
    logger,
    ...(fetchImpl ? { fetch: fetchImpl as typeof fetch } : {}),
  });

  return async (options = {}) => {
    try {
      const token = await manager.getAccessToken('bff', {
        ...(options.scope ? { scope: options.scope } : {}),
        ...(options.resource ? { resource: options.resource } : {}),
      });
      return token.accessToken;
    } catch (err) {
      const status = (err as { status?: unknown }).status;
      throw new BffError(
        status === 503 ? 'ERR_BFF_IDP_UNAVAILABLE' : 'ERR_BFF_IDP_RESPONSE',
        'client credentials request failed',
        { cause: err },
      );
    }
  };
}
