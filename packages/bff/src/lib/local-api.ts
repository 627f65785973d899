// `bff.localApi()`: the guard for the host's own API routes. Same entry checks as the BFF's endpoints
// (shutdown, cross-site, X-CSRF), then the session step; `req.bff` gets the user and a token getter
// bound to the loaded session value (the token step never re-reads the request).
import type { RequestHandler } from 'express';
import type { LocalApiOptions } from './bff-api.js';
import { crossSiteError, hasCsrfHeader } from './csrf.js';
import { BffError, toBffError } from './errors.js';
import { sendError } from './http/problem.js';
import { toSessionUser } from './session/data.js';
import type { Sessions } from './session/sessions.js';
import type { ShutdownGate } from './shutdown.js';
import type { TokenService } from './tokens.js';

const CSRF_REQUIRED = new BffError('ERR_BFF_CSRF', 'X-CSRF header required');
const NO_SESSION = new BffError('ERR_BFF_NO_SESSION', 'no session');

/** Builds `localApi(options)` for one BFF. */
export function createLocalApi(deps: {
  readonly origin: string;
  readonly sessions: Sessions;
  readonly tokens: TokenService;
  readonly gate: ShutdownGate;
}): (options?: LocalApiOptions) => RequestHandler {
  const { origin, sessions, tokens, gate } = deps;
  return (opts = {}) => {
    const requireUser = opts.requireUser ?? true;
    const csrf = opts.csrf ?? true;
    return (req, res, next) => {
      if (gate.closing) return gate.refuse(res);
      gate.track(res);
      const crossSite = crossSiteError(req, origin);
      if (crossSite) return sendError(res, crossSite);
      if (csrf && !hasCsrfHeader(req)) return sendError(res, CSRF_REQUIRED);
      sessions.load(req.headers.cookie).then(
        (session) => {
          if (!session && requireUser) return sendError(res, NO_SESSION);
          req.bff = session
            ? {
                user: toSessionUser(session),
                getAccessToken: (o) => tokens.getAccessToken(session, o),
              }
            : { user: undefined, getAccessToken: () => Promise.reject(NO_SESSION) };
          next();
        },
        (err: unknown) => sendError(res, toBffError(err)),
      );
    };
  };
}
