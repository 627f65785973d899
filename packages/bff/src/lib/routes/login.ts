// GET /bff/login and /bff/silent-login: the start of the authorization code flow with PKCE S256, state,
// nonce and resource indicators. The transaction (PKCE verifier, nonce, returnUrl, expiry) lives only in
// a sealed `__Host-` cookie (login-transaction.ts), so an anonymous /bff/login writes nothing
// server-side (S6) and several tabs can log in at once. The callback is callback.ts.
import type { RequestHandler } from 'express';
import * as client from 'openid-client';
import { isLocalPath } from '../config.js';
import { randomId } from '../crypto.js';
import { BffError } from '../errors.js';
import { appendSetCookie, hostCookie } from '../http/cookies.js';
import { sendError } from '../http/problem.js';
import type { BffServices } from '../services.js';
import { buildAuthorizationRedirect } from './authorization-request.js';
import { loginFailed } from './callback.js';
import {
  expireOldTransactions,
  firstQuery,
  type LoginTransaction,
  TRANSACTION_TTL,
  txAad,
  txCookieName,
  txCookieValue,
  txSealer,
} from './login-transaction.js';

export { MAX_PENDING_TRANSACTIONS, TRANSACTION_TTL } from './login-transaction.js';

const SILENT_CALLBACK = '/bff/silent-login-callback';
const prompts = new Set(['none', 'login', 'consent', 'select_account', 'create']);

/** GET /bff/login and /bff/silent-login. */
export function loginHandler(core: BffServices, silent: boolean): RequestHandler {
  const { config, sessions } = core;
  const sealer = txSealer(core);
  return async (req, res) => {
    res.setHeader('Cache-Control', 'no-store');
    let returnUrl = '/';
    let prompt: string | undefined;
    if (silent) {
      returnUrl = SILENT_CALLBACK;
      prompt = 'none';
    } else {
      const rawReturn = firstQuery(req, 'returnUrl');
      if (rawReturn === null || (rawReturn !== undefined && !isLocalPath(rawReturn))) {
        return sendError(res, new BffError('ERR_BFF_BAD_REQUEST', 'returnUrl must be a local path'));
      }
      returnUrl = rawReturn ?? '/';
      const rawPrompt = firstQuery(req, 'prompt');
      if (rawPrompt === null || (rawPrompt !== undefined && !prompts.has(rawPrompt))) {
        return sendError(res, new BffError('ERR_BFF_BAD_REQUEST', 'prompt is not a supported value'));
      }
      prompt = rawPrompt;
    }

    const configuration = await core.getOidcConfiguration();
    // L2/L3: fresh verifier (32 random octets → 43 chars), state and nonce (256 bits each) per login.
    const verifier = client.randomPKCECodeVerifier();
    const state = randomId(32);
    const nonce = randomId(32);
    const tx: LoginTransaction = {
      verifier,
      nonce,
      returnUrl,
      silent,
      exp: sessions.nowSeconds() + TRANSACTION_TTL,
    };
    const sealed = sealer.seal(JSON.stringify(tx), txAad(state));

    const params = new URLSearchParams({
      redirect_uri: config.redirectUri,
      response_type: 'code',
      scope: config.scope,
      state,
      nonce,
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
    });
    if (prompt) params.set('prompt', prompt);
    for (const resource of config.resource) params.append('resource', resource);
    // L16: pushed to the OP first when PAR applies. A refused push ends here, before any cookie is set
    // or the browser is sent anywhere; an unreachable OP throws (503 with Retry-After).
    const authorization = await buildAuthorizationRedirect(config, core.logger, configuration, params);
    if ('refused' in authorization) return loginFailed(core, res, authorization.refused, silent, 502);
    const { url } = authorization;

    for (const expired of expireOldTransactions(req.headers.cookie)) appendSetCookie(res, expired);
    appendSetCookie(res, hostCookie(txCookieName(state), txCookieValue(tx, sealed), TRANSACTION_TTL, 'Lax'));
    res.redirect(302, url.href);
  };
}
