// Client-credentials tokens for the BFF's own client (remote APIs with token type `client`). A small
// built-in adapter: cached per (resource, scope) until `expires_in` minus a margin, single-flight.
// Hosts can plug in @gatehouse/token-manager instead through the `getClientAccessToken` option.
import * as client from 'openid-client';
import { BffError } from './errors.js';
import { classifyTokenError } from './oidc.js';

const MARGIN = 60;
const DEFAULT_EXPIRES_IN = 300;

/** Returns a getClientAccessToken function bound to the BFF's client configuration. */
export function createClientTokenSource(
  getOidcConfiguration: () => Promise<client.Configuration>,
  clock: () => number,
): (options?: { resource?: string; scope?: string }) => Promise<string> {
  const cache = new Map<string, { token: string; exp: number }>();
  const flights = new Map<string, Promise<string>>();

  return (options = {}) => {
    const key = `${options.resource ?? ''}\u0000${options.scope ?? ''}`;
    const hit = cache.get(key);
    if (hit && hit.exp - MARGIN > clock() / 1000) return Promise.resolve(hit.token);
    let flight = flights.get(key);
    if (!flight) {
      flight = (async () => {
        const configuration = await getOidcConfiguration();
        const params: Record<string, string> = {};
        if (options.resource) params.resource = options.resource;
        if (options.scope) params.scope = options.scope;
        try {
          const response = await client.clientCredentialsGrant(configuration, params);
          const exp = clock() / 1000 + (response.expires_in ?? DEFAULT_EXPIRES_IN);
          cache.set(key, { token: response.access_token, exp });
          return response.access_token;
        } catch (err) {
          const kind = classifyTokenError(err);
          throw new BffError(
            kind === 'transient' ? 'ERR_BFF_IDP_UNAVAILABLE' : 'ERR_BFF_IDP_RESPONSE',
            'client credentials request failed',
            { cause: err },
          );
        }
      })().finally(() => flights.delete(key));
      flights.set(key, flight);
    }
    return flight;
  };
}
