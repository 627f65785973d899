// GET /bff/login, /bff/silent-login, /bff/callback and /bff/silent-login-callback: the authorization
// code flow with PKCE S256, state, nonce and RFC 9207 `iss`. The transaction (PKCE verifier, nonce,
// returnUrl, expiry) lives only in a `__Host-` SameSite=Lax cookie named after the state and sealed
// with AES-256-GCM bound to that state, so an anonymous /bff/login writes nothing server-side (S6),
// several tabs can log in at once, and a callback without that browser's cookie finds nothing (L3).
// The callback clears the cookie and claims the state once in the store, so a replayed callback URL
// never reaches the token endpoint, even with a copied cookie (L4).
import type { Request, RequestHandler, Response } from 'express';
import * as client from 'openid-client';
import { isLocalPath } from '../config.js';
import { appendSetCookie, type Core, hostCookie, readCookie } from '../core.js';
import { createSealer, randomId, type Sealer, sha256 } from '../crypto.js';
import { BffError, describeError, sendProblem } from '../errors.js';
import { escapeHtml, sendPage } from '../html.js';
import { verifyLoginIdToken } from '../id-token.js';
import { classifyCallbackError, classifyTokenError } from '../oidc.js';
import type { BffSessionData } from '../session.js';

/** Login transactions expire after this many seconds (L3: Max-Age ≤ 600). */
export const TRANSACTION_TTL = 600;
/**
 * Most pending transaction cookies one browser keeps: starting another sign-in beyond it expires the
 * oldest, so a browser's Cookie header stays bounded however many tabs (or scripts) start a login.
 */
export const MAX_PENDING_TRANSACTIONS = 8;
const SILENT_CALLBACK = '/bff/silent-login-callback';
const prompts = new Set(['none', 'login', 'consent', 'select_account', 'create']);
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

interface LoginTransaction {
  readonly verifier: string;
  readonly nonce: string;
  readonly returnUrl: string;
  readonly silent: boolean;
  /** Expiry, epoch seconds on the BFF's clock (the cookie's Max-Age is only the browser's word). */
  readonly exp: number;
}

const TX_COOKIE_PREFIX = '__Host-bff-tx-';
const txCookieName = (state: string) => `${TX_COOKIE_PREFIX}${sha256(state).slice(0, 16)}`;
// Associated data: a sealed transaction opens only under the state it was issued for.
const txAad = (state: string) => `login-transaction:${state}`;
const txClaimKey = (state: string) => `login-state:${sha256(state)}`;

/** Seals transactions; one per createBff (HKDF from the session secrets, its own purpose). */
const sealers = new WeakMap<Core, Sealer>();
function txSealer(core: Core): Sealer {
  let sealer = sealers.get(core);
  if (!sealer) {
    sealer = createSealer(core.config.sessionSecrets, 'login-transaction');
    sealers.set(core, sealer);
  }
  return sealer;
}

function parseTransaction(plain: string | undefined): LoginTransaction | undefined {
  if (plain === undefined) return undefined;
  try {
    const tx = JSON.parse(plain) as Partial<LoginTransaction>;
    if (
      typeof tx.verifier !== 'string' ||
      typeof tx.nonce !== 'string' ||
      typeof tx.returnUrl !== 'string' ||
      typeof tx.silent !== 'boolean' ||
      typeof tx.exp !== 'number'
    ) {
      return undefined;
    }
    return tx as LoginTransaction;
  } catch {
    return undefined;
  }
}

// Cookie value: `<exp>.<sealed transaction>`. The clear-text expiry only orders a browser's own
// pending cookies for eviction (the state of an old cookie is unknown, so it cannot be opened); the
// sealed copy inside is the one the callback trusts.
const txCookieValue = (tx: LoginTransaction, sealed: string) => `${tx.exp}.${sealed}`;
function splitTxCookie(value: string): { exp: number; sealed: string } {
  const dot = value.indexOf('.');
  const exp = Number(value.slice(0, dot));
  return { exp: Number.isFinite(exp) ? exp : 0, sealed: value.slice(dot + 1) };
}

/**
 * Set-Cookie values that expire the oldest pending transaction cookies of this browser, so that with
 * the new one at most MAX_PENDING_TRANSACTIONS remain.
 */
function expireOldTransactions(header: string | undefined): string[] {
  if (!header) return [];
  const pending: { name: string; exp: number }[] = [];
  for (const part of header.split(';')) {
    const trimmed = part.trim();
    if (!trimmed.startsWith(TX_COOKIE_PREFIX)) continue;
    const eq = trimmed.indexOf('=');
    if (eq < 0) continue;
    pending.push({ name: trimmed.slice(0, eq), exp: splitTxCookie(trimmed.slice(eq + 1)).exp });
  }
  const excess = pending.length - (MAX_PENDING_TRANSACTIONS - 1);
  if (excess <= 0) return [];
  pending.sort((a, b) => a.exp - b.exp);
  return pending.slice(0, excess).map((p) => hostCookie(p.name, '', 0, 'Lax'));
}

function firstQuery(req: Request, name: string): string | undefined | null {
  const value = req.query[name];
  if (value === undefined) return undefined;
  return typeof value === 'string' ? value : null; // arrays / objects are invalid
}

/** GET /bff/login and /bff/silent-login. */
export function loginHandler(core: Core, silent: boolean): RequestHandler {
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
        return sendProblem(res, 400, 'ERR_BFF_BAD_REQUEST', 'returnUrl must be a local path');
      }
      returnUrl = rawReturn ?? '/';
      const rawPrompt = firstQuery(req, 'prompt');
      if (rawPrompt === null || (rawPrompt !== undefined && !prompts.has(rawPrompt))) {
        return sendProblem(res, 400, 'ERR_BFF_BAD_REQUEST', 'prompt is not a supported value');
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

    const params: Record<string, string> = {
      redirect_uri: config.redirectUri,
      response_type: 'code',
      scope: config.scope,
      state,
      nonce,
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
    };
    if (prompt) params.prompt = prompt;
    const url = client.buildAuthorizationUrl(configuration, params);
    for (const resource of config.resource) url.searchParams.append('resource', resource);

    for (const expired of expireOldTransactions(req.headers.cookie)) appendSetCookie(res, expired);
    appendSetCookie(res, hostCookie(txCookieName(state), txCookieValue(tx, sealed), TRANSACTION_TTL, 'Lax'));
    res.redirect(302, url.href);
  };
}

/** Where a failed login ends: the host's error path, the silent callback, or a neutral page (L6, L7). */
function loginFailed(core: Core, res: Response, code: string, silent: boolean, status = 400): void {
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
export function callbackHandler(core: Core): RequestHandler {
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
    try {
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
      );
      // L9, L17: openid-client has checked iss, aud, exp, sub, nonce and the alg; then the claims it
      // leaves out (azp, a future iat) and the signature, with the same alg set and keys as refresh
      // and back-channel logout.
      await verifyLoginIdToken(configuration, response, sessions.nowSeconds());
      const idClaims = response.claims();
      if (!idClaims) throw new BffError('ERR_BFF_LOGIN_FAILED', 'no ID token');
      // L12: UserInfo `sub` must equal the ID token's (openid-client checks it). Only after the ID token passed (L9).
      if (config.fetchUserInfo && configuration.serverMetadata().userinfo_endpoint) {
        try {
          userinfo = { ...(await client.fetchUserInfo(configuration, response.access_token, idClaims.sub)) };
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
      createdAt: now,
      createdAtMs: core.clock(),
      lastSeenAt: now,
      expiresAt: now + config.absoluteTimeout,
    };
    // L13: always a brand-new session id; any previous (possibly attacker-planted) id is destroyed.
    const previousId = typeof req.sessionID === 'string' ? req.sessionID : undefined;
    try {
      const record = tokens.fromResponse(response);
      const sessionId = await sessions.create(
        req,
        data,
        (id) => tokens.seal(id, record),
        (ended) => tokens.forget(ended),
      );
      if (previousId && previousId !== sessionId) tokens.forget(previousId);
    } catch (err) {
      throw new BffError('ERR_BFF_STORE_UNAVAILABLE', 'session store unavailable', { cause: err });
    }
    if (!req.secure && !('encrypted' in req.socket)) {
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
function sendSilentResult(core: Core, res: Response, isLoggedIn: boolean): void {
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
export function silentCallbackHandler(core: Core): RequestHandler {
  return async (req, res) => {
    const loaded = await core.sessions.current(req);
    sendSilentResult(core, res, loaded !== undefined);
  };
}
