// GET /bff/callback and /bff/silent-login-callback: the end of the authorization code flow. The callback
// opens this browser's transaction cookie (login-transaction.ts), clears it and claims the state once in
// the store, so a replayed callback URL never reaches the token endpoint, even with a copied cookie
// (L3, L4); checks RFC 9207 `iss` (L5), redeems the code, verifies the ID token (L9, L17), then writes a
// new session (L13) and sets its cookie.
import type { RequestHandler, Response } from 'express';
import * as client from 'openid-client';
import { randomId } from '../crypto.js';
import { requireDpopBound } from '../dpop/authorization-server.js';
import { DpopKey } from '../dpop/key.js';
import { BffError, describeError } from '../errors.js';
import { escapeHtml, sendPage } from '../html.js';
import { appendSetCookie, hostCookie, readCookie } from '../http/cookies.js';
import { verifyLoginIdToken } from '../id-token.js';
import { classifyCallbackError, classifyTokenError } from '../oidc.js';
import type { BffServices } from '../services.js';
import type { BffSessionData } from '../session/data.js';
import {
  firstQuery,
  parseTransaction,
  splitTxCookie,
  txAad,
  txClaimKey,
  txCookieName,
  txSealer,
} from './login-transaction.js';

/** Claims that describe the token, not the user; /bff/user does not show them. */
const protocolClaims = new Set([
  'nonce',
  'at_hash',
  'c_hash',
  's_hash',
  'exp',
  'iat',
  'nbf',
  'jti',
  'aud',
  'azp',
]);

/** Where a failed login ends: the host's error path, the silent callback, or a neutral page (L6, L7). */
export function loginFailed(
  core: BffServices,
  res: Response,
  code: string,
  silent: boolean,
  status = 400,
): void {
  if (res.headersSent) return;
  if (silent) {
    sendSilentResult(core, res, false);
    return;
  }
  if (core.config.errorPath) {
    res.redirect(302, `${core.config.errorPath}?error=${encodeURIComponent(code)}`);
    return;
  }
  sendPage(
    res,
    status,
    'Sign-in failed',
    `<h1>Sign-in failed</h1><p>Error: <code>${escapeHtml(code)}</code></p><p><a href="/bff/login">Try again</a></p>`,
  );
}

function userClaims(idClaims: Record<string, unknown>, userinfo: Record<string, unknown> | undefined) {
  const claims: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(userinfo ?? {})) claims[k] = v;
  for (const [k, v] of Object.entries(idClaims)) if (!protocolClaims.has(k)) claims[k] = v;
  return claims;
}

/** GET /bff/callback. */
export function callbackHandler(core: BffServices): RequestHandler {
  const { config, store, sessions, tokens, logger } = core;
  const sealer = txSealer(core);
  return async (req, res) => {
    // L15 on every outcome.
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('Referrer-Policy', 'no-referrer');

    const state = firstQuery(req, 'state');
    if (typeof state !== 'string' || state.length === 0 || state.length > 512) {
      return loginFailed(core, res, 'invalid_request', false);
    }
    const cookieName = txCookieName(state);
    const cookie = readCookie(req.headers.cookie, cookieName);
    if (!cookie || cookie.length > 8192) {
      // L3: no transaction cookie from this browser: no token request, nothing consumed.
      return loginFailed(core, res, 'invalid_request', false);
    }
    appendSetCookie(res, hostCookie(cookieName, '', 0, 'Lax'));
    // Opens only under this state and only untampered (AES-GCM); another browser's or another
    // state's cookie, or a forged one, reads as nothing.
    const tx = parseTransaction(sealer.open(splitTxCookie(cookie).sealed, txAad(state)));
    const txNow = sessions.nowSeconds();
    if (!tx || tx.exp <= txNow) return loginFailed(core, res, 'invalid_request', false); // L3, L4 (expired)
    // L4: single use. The cookie is cleared above, but a copied cookie with the same callback URL
    // must not reach the token endpoint a second time. The mark lives as long as the transaction could.
    if (!(await store.claimOnce(txClaimKey(state), tx.exp - txNow + 60))) {
      logger.info({}, 'bff: replayed login callback refused');
      return loginFailed(core, res, 'invalid_request', false);
    }

    const configuration = await core.getOidcConfiguration();
    // L5 (RFC 9207): checked here explicitly, before anything else looks at the response.
    const iss = firstQuery(req, 'iss');
    const issRequired =
      configuration.serverMetadata().authorization_response_iss_parameter_supported === true;
    if (iss === null || (iss === undefined && issRequired) || (iss !== undefined && iss !== config.issuer)) {
      logger.warn({}, 'bff: authorization response iss missing or not the configured issuer');
      return loginFailed(core, res, 'invalid_request', tx.silent);
    }
    // The current URL is rebuilt from configuration, never from Host headers.
    const currentUrl = new URL(config.redirectUri);
    const query = req.originalUrl.indexOf('?');
    if (query >= 0) currentUrl.search = req.originalUrl.slice(query);

    let response: Awaited<ReturnType<typeof client.authorizationCodeGrant>>;
    let userinfo: Record<string, unknown> | undefined;
    // D1: the session's own DPoP key, made now; the code redemption and UserInfo carry its proofs.
    const dpopKey = config.dpop ? DpopKey.generate(config.dpop.alg) : undefined;
    try {
      const dpop = dpopKey && (await core.dpop.options(configuration, dpopKey));
      response = await client.authorizationCodeGrant(
        configuration,
        currentUrl,
        {
          pkceCodeVerifier: tx.verifier,
          expectedState: state,
          expectedNonce: tx.nonce,
          idTokenExpected: true,
        },
        config.resource.length > 0
          ? new URLSearchParams(config.resource.map((r): [string, string] => ['resource', r]))
          : undefined,
        dpop,
      );
      if (dpop) requireDpopBound(response);
      // L9, L17: openid-client has checked iss, aud, exp, sub, nonce and the alg; then the claims it
      // leaves out (azp, a future iat) and the signature, with the same alg set and keys as refresh
      // and back-channel logout.
      await verifyLoginIdToken(configuration, response, sessions.nowSeconds());
      const idClaims = response.claims();
      if (!idClaims) throw new BffError('ERR_BFF_LOGIN_FAILED', 'no ID token');
      // L12: UserInfo `sub` must equal the ID token's (openid-client checks it). Only after the ID token passed (L9).
      if (config.fetchUserInfo && configuration.serverMetadata().userinfo_endpoint) {
        try {
          userinfo = {
            ...(await client.fetchUserInfo(configuration, response.access_token, idClaims.sub, dpop)),
          };
        } catch (err) {
          // A sub mismatch is fatal (L12). An AT the UserInfo endpoint refuses (e.g. audience-restricted
          // to an API by a resource indicator) only means no extra claims: the ID token stands.
          if (err instanceof client.ClientError && err.code === 'OAUTH_JSON_ATTRIBUTE_COMPARISON_FAILED')
            throw err;
          if (classifyTokenError(err) === 'transient') throw err;
          logger.info(
            { err: describeError(err) },
            'bff: UserInfo unavailable for this access token; using ID token claims',
          );
        }
      }
    } catch (err) {
      if (err instanceof client.AuthorizationResponseError) {
        // L6: the IdP's error code only, when it is a plain token; never its description.
        const code = /^[a-z_]{1,64}$/.test(err.error) ? err.error : 'login_failed';
        logger.info({ error: code }, 'bff: authorization error response');
        return loginFailed(core, res, code, tx.silent);
      }
      if (err instanceof BffError && err.code === 'ERR_BFF_DPOP_NOT_BOUND') {
        logger.warn({ err: describeError(err) }, 'bff: login callback failed');
        return loginFailed(core, res, 'dpop_not_bound', tx.silent, 502);
      }
      const kind =
        err instanceof BffError
          ? err.status >= 500
            ? 'transient'
            : 'validation'
          : classifyCallbackError(err);
      logger.warn({ err: describeError(err), kind }, 'bff: login callback failed');
      if (kind === 'transient') return loginFailed(core, res, 'temporarily_unavailable', tx.silent, 503);
      if (kind === 'response') return loginFailed(core, res, 'invalid_response', tx.silent, 502);
      return loginFailed(core, res, 'login_failed', tx.silent);
    }

    const idClaims = response.claims();
    if (!idClaims) return loginFailed(core, res, 'login_failed', tx.silent);
    const now = sessions.nowSeconds();
    const sid = typeof idClaims.sid === 'string' ? idClaims.sid : undefined;
    const sessionState = typeof response.session_state === 'string' ? response.session_state : undefined;
    const data: BffSessionData = {
      v: 1,
      iss: idClaims.iss,
      sub: idClaims.sub,
      ...(sid !== undefined ? { sid } : {}),
      logoutId: sid ?? randomId(16),
      claims: userClaims(idClaims, userinfo),
      ...(sessionState ? { sessionState } : {}),
      ...(dpopKey ? { jkt: dpopKey.jkt } : {}),
      createdAt: now,
      createdAtMs: core.clock(),
      lastSeenAt: now,
      expiresAt: now + config.absoluteTimeout,
    };
    // L13: always a brand-new session id; any previous (possibly attacker-planted) session is deleted.
    const previousId = sessions.cookie.idFrom(req.headers.cookie);
    const issued = tokens.fromResponse(response);
    const record = dpopKey ? { ...issued, dpop: dpopKey.toPrivateJwk() } : issued;
    const sessionId = await sessions.create(data, (id) => tokens.seal(id, record), previousId);
    // The session cookie is Secure, so it is set only on a request seen as https. Browsers treat
    // http://localhost as a secure context and keep Secure/__Host- cookies there, so a loopback base URL
    // reached over a loopback socket counts too. Config and socket decide, never a header.
    if (req.secure || (config.loopbackHttp && isLoopbackAddress(req.socket.remoteAddress))) {
      appendSetCookie(res, sessions.cookie.issue(sessionId));
    } else {
      logger.warn(
        {},
        "bff: request not seen as https; the Secure session cookie is not set (set Express 'trust proxy')",
      );
    }
    logger.info({ silent: tx.silent }, 'bff: login completed');
    // The silent result is rendered right here: a redirect would still belong to the cross-site chain
    // that started at the IdP, so the new SameSite=Strict cookie would not come along.
    if (tx.silent) return sendSilentResult(core, res, true);
    res.redirect(302, tx.returnUrl);
  };
}

/** The page that tells the parent frame (our own origin only) whether a session exists. */
function sendSilentResult(core: BffServices, res: Response, isLoggedIn: boolean): void {
  if (res.headersSent) return;
  const nonce = randomId(16);
  const message = JSON.stringify({ source: 'bff-silent-login', isLoggedIn });
  const target = JSON.stringify(core.config.origin);
  res.status(200);
  res.setHeader('Content-Type', 'text/html; charset=utf-8');
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader(
    'Content-Security-Policy',
    `default-src 'none'; script-src 'nonce-${nonce}'; frame-ancestors ${core.config.origin}`,
  );
  res.end(
    '<!doctype html><html><head><meta charset="utf-8"><title>silent login</title></head><body>' +
      `<script nonce="${nonce}">window.parent.postMessage(${message}, ${target});</script></body></html>`,
  );
}

/** GET /bff/silent-login-callback: tells the parent frame whether a session exists (Duende's route). */
export function silentCallbackHandler(core: BffServices): RequestHandler {
  return async (req, res) => {
    const loaded = await core.sessionOf(req, res);
    sendSilentResult(core, res, loaded !== undefined);
  };
}

/** Loopback socket addresses (the sample suite serves plain http on localhost). */
function isLoopbackAddress(address: string | undefined): boolean {
  return (
    address === '127.0.0.1' ||
    address === '::1' ||
    address === '::ffff:127.0.0.1' ||
    !!address?.startsWith('127.')
  );
}
