// OIDC Back-Channel Logout 1.0 endpoint (SECURITY B1–B5): `POST /bff/backchannel`. The OP calls it
// server to server, so there is no cookie and no CSRF header; the logout token itself is the credential.
// Validation is in backchannel/validate.ts; this file does the HTTP, the replay cache and the session ending.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Request, type Response, Router } from 'express';
import type { JWTVerifyGetKey } from 'jose';
import { BACKCHANNEL_PATH } from '../backchannel/options.js';
import { type LogoutTokenExpectations, validateLogoutToken } from '../backchannel/validate.js';
import { isBffError } from '../errors.js';
import type { BffExtensionContext } from '../extension-context.js';
import { idTokenPolicy } from '../id-token.js';
import { LOGOUT_JTI_MARK } from '../store/marks.js';

/** Largest form body accepted: a logout token is a few hundred bytes to a few KB. */
const MAX_BODY_BYTES = 64 * 1024;

/**
 * Router serving `POST /bff/backchannel` (mounted by createBff before the remote-API router).
 * 200 with `Cache-Control: no-store` on success, also when no session matched (B5); 400
 * `{ error: 'invalid_request' }` for anything invalid, with no session touched; 405 for other methods.
 */
export function createBackchannelRouter(ctx: BffExtensionContext): Router {
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
      if (isBffError(err) && err.status === 503) {
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
    // A store that cannot remember the jti rejects (503 below: nothing ended, the OP retries) rather
    // than forget another one, so a refused mark never turns into an accepted replay.
    const ttl = Math.max(1, Math.ceil(exp - Date.now() / 1000) + expect.clockTolerance);
    if (!(await ctx.claimOnce(`${LOGOUT_JTI_MARK}${iss}:${jti}`, ttl))) {
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
