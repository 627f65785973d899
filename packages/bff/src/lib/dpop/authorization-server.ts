// DPoP at the authorization server (RFC 9449 §5, §8; SECURITY D1): the openid-client options that put a
// session key's proof on the code redemption, the refresh and the UserInfo request; the OP's nonces,
// remembered from every answer it sends and shared by all sessions; the `token_type` check; and the
// start-up check that the OP can take the configured proof algorithm.
import * as client from 'openid-client';
import { BffError } from '../errors.js';
import type { FetchLike } from '../http/fetch.js';
import type { Logger } from '../logger.js';
import type { DpopAlgorithm, DpopKey } from './key.js';
import { createNonceCache } from './nonces.js';

/** DPoP towards the OP, for one createBff instance. */
export interface AuthorizationServerDpop {
  /**
   * openid-client request options that sign with `key`: a fresh proof per request, the OP's latest
   * nonce, and openid-client's one retry when the OP answers `use_dpop_nonce`.
   */
  options(configuration: client.Configuration, key: DpopKey): Promise<client.DPoPOptions>;
  /** Wraps the fetch used for the OP so every `DPoP-Nonce` it sends is remembered (per origin). */
  recordingFetch(fetch: FetchLike): FetchLike;
}

export function createAuthorizationServerDpop(): AuthorizationServerDpop {
  const nonces = createNonceCache();
  return {
    async options(configuration, key) {
      // openid-client's handle keeps nonces per handle, and a handle belongs to one session's key: the
      // shared cache goes into each proof instead, so a session's first request already has the nonce
      // another session's request was given.
      const DPoP = client.getDPoPHandle(configuration, await key.keyPair(), {
        [client.modifyAssertion]: (_header, payload) => {
          const origin = typeof payload.htu === 'string' ? URL.parse(payload.htu)?.origin : undefined;
          const nonce = origin === undefined ? undefined : nonces.get(origin);
          if (nonce !== undefined) payload.nonce = nonce;
        },
      });
      return { DPoP };
    },
    recordingFetch(fetch) {
      return async (input, init) => {
        const response = await fetch(input, init);
        const nonce = response.headers.get('dpop-nonce');
        if (nonce !== null) {
          const origin = URL.parse(String(input))?.origin;
          if (origin !== undefined) nonces.set(origin, nonce);
        }
        return response;
      };
    },
  };
}

/**
 * D1: a token response for a DPoP-bound session must say `token_type: DPoP`. A Bearer answer means the
 * OP did not bind the token (DPoP not enabled for the client, or a proof it ignored): using it would
 * silently downgrade the session.
 * @throws BffError `ERR_BFF_DPOP_NOT_BOUND` (502).
 */
export function requireDpopBound(response: client.TokenEndpointResponse): void {
  // openid-client lower-cases token_type.
  if (String(response.token_type).toLowerCase() !== 'dpop') {
    throw new BffError(
      'ERR_BFF_DPOP_NOT_BOUND',
      `the OP answered token_type ${JSON.stringify(String(response.token_type).slice(0, 20))} to a DPoP-bound request: enable DPoP for this client at the OP, or set dpop: false`,
    );
  }
}

/**
 * At discovery: an OP that lists its DPoP algorithms without ours cannot bind tokens for us (a
 * configuration error); one that lists none may still support DPoP, so that only gets a warning.
 * @throws BffError `ERR_BFF_CONFIGURATION` (500).
 */
export function checkDpopSupport(metadata: client.ServerMetadata, alg: DpopAlgorithm, logger: Logger): void {
  const supported = metadata.dpop_signing_alg_values_supported;
  if (!Array.isArray(supported)) {
    logger.warn(
      { alg },
      'bff: dpop is on but the OP metadata has no dpop_signing_alg_values_supported; sign-in fails with ERR_BFF_DPOP_NOT_BOUND if the OP does not bind tokens',
    );
    return;
  }
  if (!supported.includes(alg)) {
    throw new BffError(
      'ERR_BFF_CONFIGURATION',
      `dpop.alg ${alg} is not in the OP's dpop_signing_alg_values_supported (${supported.join(', ')}): pick one of those`,
    );
  }
}
