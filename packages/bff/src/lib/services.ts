// The services one createBff instance wires together (bff.ts) and hands to the /bff endpoint modules
// (routes/*): configuration, store, the session and token steps, the OIDC client, the cookie sealer.
// Types only: the endpoints depend on this interface, never on bff.ts or on each other.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Configuration } from 'openid-client';
import type { ResolvedBffConfig } from './config.js';
import type { Sealer } from './crypto.js';
import type { AuthorizationServerDpop } from './dpop/authorization-server.js';
import type { Logger } from './logger.js';
import type { LoadedSession } from './session/data.js';
import type { Sessions } from './session/sessions.js';
import type { SessionStore } from './store/types.js';
import type { TokenService } from './tokens.js';

/** Everything an endpoint module needs. */
export interface BffServices {
  readonly config: ResolvedBffConfig;
  readonly store: SessionStore;
  readonly sessions: Sessions;
  readonly tokens: TokenService;
  readonly logger: Logger;
  readonly clock: () => number;
  /** Seals small cookie payloads (logout state). */
  readonly cookieSealer: Sealer;
  getOidcConfiguration(): Promise<Configuration>;
  /** DPoP towards the OP: proofs with a session key, the OP's nonces (D1). */
  readonly dpop: AuthorizationServerDpop;
  /**
   * The session step for an endpoint: the live session of `req`'s cookie (sliding the idle timer unless
   * `slide` is false); a cookie naming an expired session is deleted and cleared on `res` (S4).
   * @throws BffError `ERR_BFF_STORE_UNAVAILABLE` (503).
   */
  sessionOf(req: IncomingMessage, res: ServerResponse, slide?: boolean): Promise<LoadedSession | undefined>;
  /** Ends one session everywhere (store entry, index) and drops what this process keeps for it. */
  endSession(sessionId: string): Promise<void>;
}
