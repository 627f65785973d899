// The internal parts one createBff instance wires together, handed to the route modules.
import type { Configuration } from 'openid-client';
import type { ResolvedBffConfig } from './config.js';
import type { Sealer } from './crypto.js';
import type { Logger } from './logger.js';
import type { SessionManager } from './session.js';
import type { SessionStore } from './store/types.js';
import type { TokenService } from './tokens.js';

/** Everything a route module of the core needs. */
export interface Core {
  readonly config: ResolvedBffConfig;
  readonly store: SessionStore;
  readonly sessions: SessionManager;
  readonly tokens: TokenService;
  readonly logger: Logger;
  readonly clock: () => number;
  /** Seals small cookie payloads (logout state). */
  readonly cookieSealer: Sealer;
  getOidcConfiguration(): Promise<Configuration>;
  /** Ends one session everywhere (store entry, index, token cache). */
  endSession(sessionId: string): Promise<void>;
}
