// The per-call steps between the route check and the forwarding (issue 12's pipeline): the session
// step, the token step, the DPoP binding (D1) and the rate bucket (P7). Each takes and returns plain
// values; the engine runs them in order. The session and the tokens come through ProxyTokens, so the
// proxy never reads a store or a cookie itself.
import type { RateDecision } from '../store/types.js';
import { type ClientTokenOptions, type CompiledRoute, ERR, type UserTokenOptions } from './route.js';
import { bindSender, type ProofSigner } from './sender.js';

/**
 * The session and token steps, as the proxy calls them. `S` is the loaded session value the BFF passes
 * from the session step to the token step (LoadedSession); the engine only carries it along.
 */
export interface ProxyTokens<S> {
  /** The live session a Cookie header names, or undefined; throws BffError (503) when the store fails. */
  loadSession(cookieHeader: string | undefined): Promise<S | undefined>;
  /** The session's access token for the route's resource (refreshed when due); throws BffError 401/502/503. */
  getUserToken(session: S, options: UserTokenOptions): Promise<string>;
  /** A client-credentials token (token-manager); throws BffError 401/503. */
  getClientToken(options: ClientTokenOptions): Promise<string>;
  /**
   * The session's DPoP key when its user tokens are DPoP-bound (SECURITY D1): calls then carry
   * `Authorization: DPoP` and a proof. Undefined (or absent): Bearer.
   */
  senderKey?(session: S): ProofSigner | undefined;
}

/**
 * Per-session rate limiting (SECURITY P7): takes one call from the bucket `bucket` of the session the
 * Cookie header names (see SessionStore.consumeRate); undefined when the request carries no session.
 * It reads the signed cookie only, so it runs beside the session read (one pipelined round trip).
 */
export type ProxyRateLimiter = (
  cookieHeader: string | undefined,
  bucket: string,
  capacity: number,
  refillPerSecond: number,
) => Promise<RateDecision | undefined>;

/** A failed rate-bucket call, carried as a value until the call reads its bucket's answer. */
export class RateFailure {
  constructor(readonly err: unknown) {}
}
const asRateFailure = (err: unknown) => new RateFailure(err);

/** The steps for one engine, over the BFF's token service and rate limiter. */
export function createCallSteps<S>(tokens: ProxyTokens<S>, rateLimiter: ProxyRateLimiter | undefined) {
  /** D1: the DPoP binding of a call that sends `session`'s user token, when that token is bound. */
  const senderOf = (route: CompiledRoute, path: string, token: string | undefined, session: S | undefined) =>
    bindSender(session && tokens.senderKey?.(session), route.api.upstreamOrigin, path, token);

  /** The session step, where the route's token kind looks at a session (not for `none` and `client`). */
  function sessionFor(
    route: CompiledRoute,
    cookieHeader: string | undefined,
  ): Promise<S | undefined> | undefined {
    const kind = route.api.token;
    return kind === 'none' || kind === 'client' ? undefined : tokens.loadSession(cookieHeader);
  }

  /**
   * The token step: what this route sends, given the session step's result (undefined: no token).
   * Throws BffError (401/503).
   */
  function tokenFor(route: CompiledRoute, session: S | undefined): Promise<string> | undefined {
    const kind = route.api.token;
    if (kind === 'none') return undefined;
    if (kind === 'client') return tokens.getClientToken(route.clientTokenOptions);
    if (session !== undefined) return tokens.getUserToken(session, route.userTokenOptions);
    if (kind === 'user') throw ERR.noSession;
    if (kind === 'user-or-client') return tokens.getClientToken(route.clientTokenOptions);
    return undefined; // user-or-none, anonymous
  }

  /**
   * SECURITY P7: one call from the session's bucket for this route (undefined when not limited). The
   * promise never rejects: a failure arrives wrapped as a RateFailure value, so the bucket can be taken
   * beside the session read and awaited after the token step without ever being an unhandled rejection.
   */
  function consumeRate(
    route: CompiledRoute,
    cookieHeader: string | undefined,
  ): Promise<RateDecision | RateFailure | undefined> | undefined {
    const limit = route.api.rateLimit;
    if (!limit || !rateLimiter) return undefined;
    const taken = rateLimiter(cookieHeader, route.api.prefix, limit.burst, limit.perSecond);
    return taken.then(undefined, asRateFailure);
  }

  return { senderOf, sessionFor, tokenFor, consumeRate };
}
