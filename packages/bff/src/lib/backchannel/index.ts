// OIDC Back-Channel Logout 1.0 endpoint (SECURITY B1–B5): `POST /bff/backchannel`. The OP calls it
// server to server, so there is no cookie and no CSRF header; the logout token itself is the credential.
// Validation is in validate.ts; this file does the HTTP, the replay cache and the session ending.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Request, type Response, Router } from 'express';
import type { JWTVerifyGetKey } from 'jose';
import type { BffContext } from '../context.js';
import { BffError } from '../errors.js';
import { idTokenPolicy } from '../id-token.js';
import { type LogoutTokenExpectations, validateLogoutToken } from './validate.js';

export type { LogoutTokenClaims, LogoutTokenFailure, LogoutTokenResult } from './validate.js';
export { BACKCHANNEL_LOGOUT_EVENT, validateLogoutToken } from './validate.js';

/** Options of the back-channel logout endpoint (`backchannel` in the BFF options). */
export interface BackchannelOptions {
  /**
   * Require `typ: logout+jwt` (B3 strict mode, OWASP ASVS 5.0 V10.5.5). Default false: the OpenID
   * conformance suite signs logout tokens without `typ`, so strict mode fails certification.
   */
  requireLogoutTyp?: boolean;
  /**
   * Longest accepted logout-token lifetime (`exp - iat`) and age (`now - iat`), in seconds. Default 600.
   * Keeps the replay cache short; oidc-provider issues 120 s tokens.
   */
  maxTokenLifetime?: number;
  /** Clock skew tolerated on `iat`/`exp`, in seconds. Default 30. */
  clockTolerance?: number;
}

/** The validated, frozen back-channel options. */
export interface ResolvedBackchannelOptions extends Readonly<Required<BackchannelOptions>> {}

/** The endpoint's path (Duende's, relative to the BFF's base path `/bff`). */
export const BACKCHANNEL_PATH = '/bff/backchannel';

/** Validates the `backchannel` option once at start-up; throws TypeError with the fix. */
export function resolveBackchannelOptions(input: BackchannelOptions | undefined): ResolvedBackchannelOptions {
  const options = input ?? {};
  if (typeof options !== 'object' || options === null) {
    throw new TypeError('backchannel must be an object like { requireLogoutTyp: false }');
  }
  for (const key of Object.keys(options)) {
    if (key !== 'requireLogoutTyp' && key !== 'maxTokenLifetime' && key !== 'clockTolerance') {
      throw new TypeError(
        `backchannel.${key} is not an option; use requireLogoutTyp, maxTokenLifetime or clockTolerance`,
      );
    }
  }
  const requireLogoutTyp = options.requireLogoutTyp ?? false;
  if (typeof requireLogoutTyp !== 'boolean')
    throw new TypeError('backchannel.requireLogoutTyp must be true or false');
  const maxTokenLifetime = options.maxTokenLifetime ?? 600;
  if (!isSeconds(maxTokenLifetime, 1, 86_400)) {
    throw new TypeError(
      'backchannel.maxTokenLifetime is in seconds and must be between 1 and 86400, e.g. 600',
    );
  }
  const clockTolerance = options.clockTolerance ?? 30;
  if (!isSeconds(clockTolerance, 0, 300)) {
    throw new TypeError('backchannel.clockTolerance is in seconds and must be between 0 and 300, e.g. 30');
  }
  return Object.freeze({ requireLogoutTyp, maxTokenLifetime, clockTolerance });
}

/** Largest form body accepted: a logout token is a few hundred bytes to a few KB. */
const MAX_BODY_BYTES = 64 * 1024;

/**
 * Router serving `POST /bff/backchannel` (mounted by createBff before the remote-API router).
 * 200 with `Cache-Control: no-store` on success, also when no session matched (B5); 400
 * `{ error: 'invalid_request' }` for anything invalid, with no session touched; 405 for other methods.
 */
export function createBackchannelRouter(ctx: BffContext): Router {
  const options = ctx.config.backchannel;
  let verifier: Promise<{ keys: JWTVerifyGetKey; expect: LogoutTokenExpectations }> | undefined;

  // Built once, on the first logout call (discovery is lazy). Keys and accepted algorithms are the ID
  // tokens' (id-token.ts): the same key source, refetched at once on an unknown `kid` (L10a), and the
  // same `alg` set (L17), so an OP signing with ES256 or PS256 works here exactly as at login.
  const getVerifier = () => {
    verifier ??= ctx.getOidcConfiguration().then((configuration) => {
      const server = configuration.serverMetadata();
      const client = configuration.clientMetadata();
      const policy = idTokenPolicy(configuration);
      return {
        keys: policy.keys.getKey,
        expect: Object.freeze({
          issuer: server.issuer,
          clientId: client.client_id,
          algorithms: policy.algorithms,
          requireTyp: options.requireLogoutTyp,
          maxLifetime: options.maxTokenLifetime,
          clockTolerance: options.clockTolerance,
        }),
      };
    });
    // A failed discovery is retried on the next call instead of being cached forever.
    verifier.catch(() => {
      verifier = undefined;
    });
    return verifier;
  };

  const router = Router();
  router.all(BACKCHANNEL_PATH, (req: Request, res: Response) => {
    res.setHeader('cache-control', 'no-store');
    if (req.method !== 'POST') {
      res.setHeader('allow', 'POST');
      sendJson(res, 405, { error: 'method_not_allowed' });
      return;
    }
    handleLogout(req, res).catch((err: unknown) => {
      ctx.logger.error(
        { err: err instanceof Error ? err.message : String(err) },
        'back-channel logout failed',
      );
      if (res.headersSent) return;
      // The OP's keys or the store being unreachable is not a bad token: 503 asks the OP to retry.
      if (err instanceof BffError && err.status === 503) {
        res.setHeader('retry-after', '5');
        sendJson(res, 503, { error: 'temporarily_unavailable' });
        return;
      }
      sendJson(res, 500, { error: 'server_error' });
    });
  });

  async function handleLogout(req: Request, res: Response): Promise<void> {
    const token = await readLogoutToken(req);
    if (token === undefined) {
      ctx.logger.info({ reason: 'request' }, 'back-channel logout refused');
      sendJson(res, 400, { error: 'invalid_request' });
      return;
    }
    const { keys, expect } = await getVerifier();
    const result = await validateLogoutToken(token, keys, expect);
    if (!result.ok) {
      ctx.logger.info({ reason: result.reason }, 'back-channel logout token refused');
      sendJson(res, 400, { error: 'invalid_request' });
      return;
    }
    const { iss, sid, sub, jti, exp } = result.claims;
    // The replay cache is the store's, so a token replayed to another instance is refused too. Claimed
    // before the sessions end, so two concurrent deliveries cannot both act.
    const ttl = Math.max(1, Math.ceil(exp - Date.now() / 1000) + expect.clockTolerance);
    if (!(await ctx.claimOnce(`backchannel:jti:${iss}:${jti}`, ttl))) {
      ctx.logger.info({ reason: 'replay' }, 'back-channel logout token refused');
      sendJson(res, 400, { error: 'invalid_request' });
      return;
    }
    // BCL §2.7: with `sid`, end that OP session's sessions; with only `sub`, all of the user's.
    const ended = await ctx.endSessions(sid !== undefined ? { iss, sid } : { iss, sub: sub as string });
    ctx.logger.info({ ended, bySid: sid !== undefined }, 'back-channel logout');
    res.status(200).end();
  }

  return router;
}

/** The single `logout_token` of a form-encoded body, or undefined when the request is not one (B1). */
async function readLogoutToken(req: Request): Promise<string | undefined> {
  const type = req.headers['content-type']?.split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded') return undefined;
  const parsed: unknown = req.body;
  if (parsed !== undefined && parsed !== null && typeof parsed === 'object' && req.readableEnded) {
    // A body parser of the host's ran first.
    const value = (parsed as Record<string, unknown>).logout_token;
    return typeof value === 'string' && value !== '' ? value : undefined;
  }
  const body = await readBody(req, MAX_BODY_BYTES);
  if (body === undefined) return undefined;
  const values = new URLSearchParams(body).getAll('logout_token');
  return values.length === 1 && values[0] !== '' ? values[0] : undefined;
}

function readBody(req: IncomingMessage, limit: number): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      // Too big to be a logout token: answer 400 now, drain the rest unread.
      if (size > limit) resolve(undefined);
      else chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function sendJson(res: ServerResponse, status: number, body: object): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function isSeconds(value: unknown, min: number, max: number): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= min && value <= max;
}
