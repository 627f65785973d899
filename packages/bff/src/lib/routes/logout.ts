// GET /bff/logout?sid= (Duende style: the sid must match) and POST /bff/logout with X-CSRF: 1; then
// GET /bff/signed-out, the post-logout landing page that checks `state` (O5).
import type { RequestHandler } from 'express';
import * as client from 'openid-client';
import { isLocalPath } from '../config.js';
import { appendSetCookie, type Core, hostCookie, readCookie } from '../core.js';
import { randomId, safeEqual } from '../crypto.js';
import { hasCsrfHeader } from '../csrf.js';
import { BffError, describeError, sendJsonError, sendProblem } from '../errors.js';
import { sendPage } from '../html.js';

const LOGOUT_COOKIE = '__Host-bff-logout';
const LOGOUT_TTL = 600;
/** Revocation gets this long at most; logout never waits on a slow IdP beyond it (O3). */
const REVOCATION_TIMEOUT_MS = 3000;

interface LogoutState {
  readonly state: string;
  readonly returnUrl: string;
  readonly exp: number;
}

/** GET and POST /bff/logout. */
export function logoutHandler(core: Core): RequestHandler {
  const { config, sessions, tokens, logger } = core;
  return async (req, res) => {
    res.setHeader('Cache-Control', 'no-store');
    const isPost = req.method === 'POST';
    if (isPost && !hasCsrfHeader(req))
      return sendJsonError(res, new BffError('ERR_BFF_CSRF', 'X-CSRF header required'));

    const rawReturn = req.query.returnUrl;
    if (rawReturn !== undefined && (typeof rawReturn !== 'string' || !isLocalPath(rawReturn))) {
      return sendProblem(res, 400, 'ERR_BFF_BAD_REQUEST', 'returnUrl must be a local path');
    }
    const returnUrl = typeof rawReturn === 'string' ? rawReturn : '/';

    const loaded = await sessions.current(req);
    if (!loaded) return res.redirect(302, returnUrl); // nothing to end
    if (!isPost) {
      // A GET changes state only with the session's logout id: a cross-site <img> cannot know it (O1).
      const sid = req.query.sid;
      if (typeof sid !== 'string' || !safeEqual(sid, loaded.data.logoutId)) {
        return sendProblem(res, 400, 'ERR_BFF_BAD_REQUEST', 'sid does not match the session');
      }
    }

    const record = tokens.open(loaded.id, loaded.tokens);
    // O2, O6: local logout first; whatever the IdP does next, this cookie no longer opens a session. The
    // session is ended by its id in the store (with its tokens) before the cookie is touched, however it
    // was loaded: through express-session or read straight from the cookie. A store failure is a BffError
    // 503 thrown before any Set-Cookie, so the browser keeps a cookie that still matches a live session
    // rather than a cleared cookie over a session that lives on.
    await core.endSession(loaded.id);
    // Then express-session's view of it (so nothing writes it back at the end of the response) and the
    // cookie. Deleting an already deleted entry is a no-op for every store.
    await sessions.destroy(req, res);
    logger.info({}, 'bff: local session ended by logout');

    let configuration: client.Configuration | undefined;
    try {
      configuration = await core.getOidcConfiguration();
    } catch (err) {
      logger.warn({ err: describeError(err) }, 'bff: provider unavailable at logout; local logout only');
      return res.redirect(302, returnUrl);
    }

    // O3: revoke the refresh token; any failure is logged and ignored.
    if (record?.rt && configuration.serverMetadata().revocation_endpoint) {
      try {
        await Promise.race([
          client.tokenRevocation(configuration, record.rt, { token_type_hint: 'refresh_token' }),
          new Promise((_, reject) =>
            setTimeout(() => reject(new Error('revocation timed out')), REVOCATION_TIMEOUT_MS).unref(),
          ),
        ]);
      } catch (err) {
        logger.warn({ err: describeError(err) }, 'bff: refresh token revocation failed (logout continues)');
      }
    }

    if (!configuration.serverMetadata().end_session_endpoint) return res.redirect(302, returnUrl);
    // O4: id_token_hint, client_id, the registered post_logout_redirect_uri and a random state.
    const state = randomId(32);
    const params: Record<string, string> = {
      client_id: config.clientId,
      post_logout_redirect_uri: config.postLogoutRedirectUri,
      state,
    };
    if (record?.idt) params.id_token_hint = record.idt;
    const url = client.buildEndSessionUrl(configuration, params);
    const payload: LogoutState = { state, returnUrl, exp: sessions.nowSeconds() + LOGOUT_TTL };
    appendSetCookie(
      res,
      hostCookie(
        LOGOUT_COOKIE,
        core.cookieSealer.seal(JSON.stringify(payload), LOGOUT_COOKIE),
        LOGOUT_TTL,
        'Lax',
      ),
    );
    res.redirect(302, url.href);
  };
}

/** GET /bff/signed-out: redirects to the saved returnUrl only when `state` matches; else a neutral page. */
export function signedOutHandler(core: Core): RequestHandler {
  return (req, res) => {
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('Referrer-Policy', 'no-referrer');
    const state = req.query.state;
    const sealed = readCookie(req.headers.cookie, LOGOUT_COOKIE);
    const plain = sealed ? core.cookieSealer.open(sealed, LOGOUT_COOKIE) : undefined;
    if (typeof state === 'string' && plain) {
      const saved = JSON.parse(plain) as LogoutState;
      if (
        saved.exp > core.sessions.nowSeconds() &&
        safeEqual(state, saved.state) &&
        isLocalPath(saved.returnUrl)
      ) {
        appendSetCookie(res, hostCookie(LOGOUT_COOKIE, '', 0, 'Lax'));
        return res.redirect(302, saved.returnUrl);
      }
    }
    // O5: mismatch or missing state: no redirect, no cookie change.
    sendPage(res, 200, 'Signed out', '<h1>You are signed out</h1><p><a href="/">Continue</a></p>');
  };
}
