// The refresh-token request itself, with its bounded retries (SECURITY R5, R5a): up to MAX_ATTEMPTS
// requests through the OP's circuit breaker, retrying only what the OP cannot have processed. A failure
// after the retries is a RefreshFailed carrying its classified cause; the flight decides what it means.
import * as client from 'openid-client';
import type { ResolvedBffConfig } from '../config.js';
import { requireDpopBound } from '../dpop/authorization-server.js';
import { BffError, describeError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { CircuitBreaker } from './backoff.js';
import { classifyTokenFailure, type TokenFailure } from './failure.js';
import type { RefreshTimings } from './timings.js';

/** Token requests per refresh at most (R5). */
export const MAX_ATTEMPTS = 3;
/** Pauses before the 2nd and 3rd attempt (ms); an OP's Retry-After above INLINE_RETRY_AFTER ends the refresh instead. */
const RETRY_DELAYS = [150, 400];
const INLINE_RETRY_AFTER = 1;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Why a refresh did not produce tokens (after retries): kept separate from "session over". */
export class RefreshFailed extends Error {
  constructor(
    readonly failure: TokenFailure,
    options: { cause?: unknown },
  ) {
    super('refresh failed', options);
  }
}

/** The OP's answer to a refresh grant, as openid-client returns it. */
export type RefreshResponse = client.TokenEndpointResponse & client.TokenEndpointResponseHelpers;

/** Returns `requestTokens(rt, resource, dpop)`: one refresh grant, retried where that is safe. */
export function createTokenRequester(deps: {
  readonly config: ResolvedBffConfig;
  readonly logger: Logger;
  readonly timings: RefreshTimings;
  readonly breaker: CircuitBreaker;
  getOidcConfiguration(): Promise<client.Configuration>;
}): (
  rt: string,
  resource: string | undefined,
  dpop: client.DPoPOptions | undefined,
) => Promise<RefreshResponse> {
  const { config, logger, timings, breaker } = deps;

  /**
   * One refresh-token request. openid-client takes its timeout from the Configuration; the refresh's
   * longer one (see RefreshTimings.attempt) is set for exactly this call: the library turns it into an
   * AbortSignal synchronously, before its first await, so no other request can observe the change.
   * A DPoP-bound session's request carries a proof and must come back `token_type: DPoP` (D1).
   */
  function tokenRequest(
    configuration: client.Configuration,
    rt: string,
    params: Record<string, string>,
    dpop: client.DPoPOptions | undefined,
  ) {
    const saved = configuration.timeout;
    configuration.timeout = timings.attempt;
    try {
      const request = client.refreshTokenGrant(configuration, rt, params, dpop);
      if (!dpop) return request;
      return request.then((response) => {
        requireDpopBound(response);
        return response;
      });
    } finally {
      configuration.timeout = saved;
    }
  }

  /** Up to MAX_ATTEMPTS requests; retries only what cannot have been processed by the OP (R5). */
  async function requestTokens(
    rt: string,
    resource: string | undefined,
    dpop: client.DPoPOptions | undefined,
  ) {
    const configuration = await deps.getOidcConfiguration();
    const params: Record<string, string> = {};
    if (resource !== undefined) params.resource = resource;
    else if (config.resource.length === 1 && config.resource[0]) params.resource = config.resource[0];

    for (let attempt = 1; ; attempt++) {
      let permit: Awaited<ReturnType<CircuitBreaker['admit']>>;
      try {
        permit = await breaker.admit();
      } catch (err) {
        const retryAfter = err instanceof BffError ? err.retryAfter : undefined;
        throw new RefreshFailed(
          { kind: 'transient', retryable: false, retryAfter, cause: 'circuit_open' },
          {},
        );
      }
      // A request slower than callers may wait counts against the OP now, not only when it ends.
      const slow = setTimeout(() => permit.slow(), timings.wait * 1000);
      slow.unref();
      try {
        const response = await tokenRequest(configuration, rt, params, dpop);
        permit.done(true);
        return response;
      } catch (err) {
        const failure = classifyTokenFailure(err);
        const answered = failure.kind === 'invalid_grant' || failure.kind === 'validation';
        permit.done(answered);
        logger.warn(
          { err: describeError(err), kind: failure.kind, cause: failure.cause, attempt },
          'bff: token refresh failed',
        );
        const again =
          failure.kind === 'transient' &&
          failure.retryable &&
          attempt < MAX_ATTEMPTS &&
          (failure.retryAfter ?? 0) <= INLINE_RETRY_AFTER &&
          breaker.openFor() === 0;
        if (!again) throw new RefreshFailed(failure, { cause: err });
        const pause = RETRY_DELAYS[attempt - 1] ?? 400;
        await sleep(Math.max(pause * (0.5 + Math.random() / 2), (failure.retryAfter ?? 0) * 1000));
      } finally {
        clearTimeout(slow);
      }
    }
  }

  return requestTokens;
}
