// GET /bff/user (Duende's session endpoint) and GET /bff/diagnostics (development only).
import type { RequestHandler } from 'express';
import { hasCsrfHeader } from '../csrf.js';
import { BffError } from '../errors.js';
import { sendError } from '../http/problem.js';
import type { BffServices } from '../services.js';

const CSRF_REQUIRED = new BffError('ERR_BFF_CSRF', 'X-CSRF header required');
const NO_SESSION = new BffError('ERR_BFF_NO_SESSION', 'no session');
const NOT_FOUND = new BffError('ERR_BFF_NOT_FOUND', 'not found');

/**
 * One `{ type, value }` entry per claim value; arrays become several entries. `json`: values as issued
 * (objects stay objects). `string`: Duende's shape, where every claim is a .NET `Claim` with a string
 * value: scalars as text, objects as JSON text.
 */
function toClaimList(
  claims: Record<string, unknown>,
  shape: 'json' | 'string',
): { type: string; value: unknown }[] {
  const shaped = (value: unknown): unknown => {
    if (shape === 'json' || typeof value === 'string') return value;
    return typeof value === 'object' && value !== null ? JSON.stringify(value) : String(value);
  };
  const list: { type: string; value: unknown }[] = [];
  for (const [type, value] of Object.entries(claims)) {
    if (value === undefined || value === null) continue;
    if (Array.isArray(value)) for (const v of value) list.push({ type, value: shaped(v) });
    else list.push({ type, value: shaped(value) });
  }
  return list;
}

/** GET /bff/user: claims of the session plus bff:* entries; 401 when anonymous or without `X-CSRF: 1`. */
export function userHandler(core: BffServices): RequestHandler {
  return async (req, res) => {
    res.setHeader('Cache-Control', 'no-store');
    if (!hasCsrfHeader(req)) return sendError(res, CSRF_REQUIRED);
    // `slide=false` lets a SPA poll the session without keeping it alive.
    const loaded = await core.sessionOf(req, res, req.query.slide !== 'false');
    if (!loaded) return sendError(res, NO_SESSION);
    const data = loaded.data;
    const claims = toClaimList(data.claims, core.config.userClaimValues);
    claims.push({ type: 'bff:logout_url', value: `/bff/logout?sid=${encodeURIComponent(data.logoutId)}` });
    claims.push({ type: 'bff:session_expires_in', value: core.sessions.expiresIn(data) });
    if (data.sessionState) claims.push({ type: 'bff:session_state', value: data.sessionState });
    // D1: a DPoP-bound session says so, with the key's thumbprint (public: the tokens' cnf.jkt).
    if (data.jkt) {
      claims.push({ type: 'bff:token_type', value: 'DPoP' });
      claims.push({ type: 'bff:dpop_jkt', value: data.jkt });
    }
    res.status(200).json(claims);
  };
}

/** GET /bff/diagnostics: what the session holds, never the tokens themselves. 404 unless enabled. */
export function diagnosticsHandler(core: BffServices): RequestHandler {
  return async (req, res) => {
    res.setHeader('Cache-Control', 'no-store');
    if (!core.config.diagnostics) return sendError(res, NOT_FOUND);
    const loaded = await core.sessionOf(req, res);
    if (!loaded) return sendError(res, NO_SESSION);
    const record = core.tokens.open(loaded.id, loaded.tokens);
    const now = core.sessions.nowSeconds();
    res.status(200).json({
      user: { iss: loaded.data.iss, sub: loaded.data.sub, sid: loaded.data.sid ?? null },
      claims: loaded.data.claims,
      session: {
        createdAt: new Date(loaded.data.createdAt * 1000).toISOString(),
        expiresIn: core.sessions.expiresIn(loaded.data),
      },
      tokens: {
        // D1: sender-constrained or not; the key's thumbprint only, never the key or a token.
        tokenType: record?.dpop ? 'DPoP' : 'Bearer',
        dpopJkt: (record?.dpop && loaded.data.jkt) ?? null,
        accessTokenExpiresIn: record ? record.exp - now : null,
        hasRefreshToken: Boolean(record?.rt),
        hasIdToken: Boolean(record?.idt),
        resources: Object.keys(record?.res ?? {}),
      },
      store: core.store.kind,
      issuer: core.config.issuer,
      scope: core.config.scope,
    });
  };
}
