// The Express layer: RFC 6750 statuses, challenges and bodies over real HTTP (supertest), with tokens
// from the local AS so JWKS outages can be switched on.
import express, { type Express } from 'express';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createAccessTokenValidator,
  requireAccessToken,
  requireClient,
  requireScope,
  requireUser,
} from '../src/index.js';
import { type LocalAs, startLocalAs } from './local-as.js';

let as: LocalAs;
let app: Express;
const realm = 'todo-api';

beforeAll(async () => {
  as = await startLocalAs();
  const validator = createAccessTokenValidator({ issuer: as.issuer, audience: as.audience, realm });
  app = express();
  app.use(express.urlencoded({ extended: false }));
  const auth = requireAccessToken(validator);
  app.get('/whoami', auth, (req, res) => {
    res.json({ sub: req.auth?.claims.sub, kind: req.auth?.kind, scopes: req.auth?.scopes });
  });
  app.post('/form', auth, (_req, res) => {
    res.json({ ok: true });
  });
  app.post('/write', auth, requireScope('api', 'api.write'), (_req, res) => {
    res.json({ ok: true });
  });
  app.get('/user-only', auth, requireUser(), (_req, res) => {
    res.json({ ok: true });
  });
  app.get('/client-only', auth, requireClient(), (_req, res) => {
    res.json({ ok: true });
  });
  app.get('/maybe', requireAccessToken(validator, { optional: true }), (req, res) => {
    res.json({ anonymous: req.auth === undefined });
  });
  app.get('/maybe-user', requireAccessToken(validator, { optional: true }), requireUser(), (_req, res) => {
    res.json({ ok: true });
  });
  app.get('/misconfigured', requireScope('api'), (_req, res) => {
    res.json({ ok: true });
  });
});
afterAll(async () => {
  await as.close();
});

const challenge = (error?: string) =>
  error === undefined ? `Bearer realm="${realm}"` : new RegExp(`^Bearer realm="${realm}", error="${error}"`);

describe('A1: where the token comes from', () => {
  it('A1: no credentials → 401 with a bare challenge (no error attribute)', async () => {
    const res = await request(app).get('/whoami');
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toBe(challenge());
    expect(res.headers['www-authenticate']).not.toContain('error=');
    expect(res.body.error).toBe('unauthorized');
  });

  it('A1: an unsupported scheme counts as no credentials (RFC 6750 §3.1)', async () => {
    const res = await request(app).get('/whoami').set('authorization', 'Basic dXNlcjpwYXNz');
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toBe(challenge());
  });

  it('A1: a valid token in the header → 200 with req.auth set', async () => {
    const res = await request(app)
      .get('/whoami')
      .set('authorization', `Bearer ${await as.sign()}`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ sub: 'alice', kind: 'user', scopes: ['openid', 'api'] });
  });

  it('A1: the scheme name is case-insensitive', async () => {
    const res = await request(app)
      .get('/whoami')
      .set('authorization', `bearer ${await as.sign()}`);
    expect(res.status).toBe(200);
  });

  it('A1: token in the header and ?access_token= → 400 invalid_request', async () => {
    const token = await as.sign();
    const res = await request(app)
      .get(`/whoami?access_token=${token}`)
      .set('authorization', `Bearer ${token}`);
    expect(res.status).toBe(400);
    expect(res.headers['www-authenticate']).toMatch(challenge('invalid_request'));
    expect(res.body.error).toBe('invalid_request');
    expect(JSON.stringify(res.body)).not.toContain(token);
  });

  it('A1: token only in the query → 400 invalid_request (query tokens are refused)', async () => {
    const token = await as.sign();
    const res = await request(app).get(`/whoami?x=1&access_token=${token}`);
    expect(res.status).toBe(400);
    expect(res.body.error_description).toMatch(/Authorization header/);
  });

  it('A1: token in the header and a form body → 400 invalid_request', async () => {
    const token = await as.sign();
    const res = await request(app)
      .post('/form')
      .set('authorization', `Bearer ${token}`)
      .type('form')
      .send({ access_token: token });
    expect(res.status).toBe(400);
    expect(res.body.error_description).toMatch(/more than one method/);
  });

  it('A1: a query parameter merely named like the token does not trip the check', async () => {
    const res = await request(app)
      .get('/whoami?note=access_token')
      .set('authorization', `Bearer ${await as.sign()}`);
    expect(res.status).toBe(200);
  });

  it('A1: a token with characters outside base64url → 401 invalid_token (malformed token)', async () => {
    for (const header of ['Bearer "quoted"', 'Bearer a.b.c"', 'Bearer x\\y']) {
      const res = await request(app).get('/whoami').set('authorization', header);
      expect(res.status).toBe(401);
      expect(res.headers['www-authenticate']).toMatch(challenge('invalid_token'));
    }
  });

  it('A1: a scheme that only starts with Bearer is another scheme → bare 401 challenge', async () => {
    for (const header of ['Bearertoken', 'Bearer\tabc']) {
      const res = await request(app).get('/whoami').set('authorization', header);
      expect(res.status).toBe(401);
      expect(res.headers['www-authenticate']).toBe(challenge());
    }
  });

  for (const header of ['Bearer', 'Bearer ', 'Bearer a b', 'Bearer a,b']) {
    it(`A1: malformed header ${JSON.stringify(header)} → 400 invalid_request`, async () => {
      const res = await request(app)
        .get('/whoami')
        .set('authorization', Buffer.from(header, 'latin1').toString('latin1'));
      expect(res.status).toBe(400);
      expect(res.headers['www-authenticate']).toMatch(challenge('invalid_request'));
    });
  }
});

describe('invalid tokens', () => {
  it('A2: a bad token → 401 invalid_token with a description, body never echoes the token', async () => {
    const token = await as.sign({}, { typ: 'JWT' });
    const res = await request(app).get('/whoami').set('authorization', `Bearer ${token}`);
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toMatch(challenge('invalid_token'));
    expect(res.headers['www-authenticate']).toMatch(/error_description="[^"]*typ[^"]*"/);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.body).toEqual({ error: 'invalid_token', error_description: expect.any(String) });
    expect(res.text).not.toContain(token);
    expect(res.text).not.toContain(token.split('.')[1]);
  });

  it('A5: an expired token → 401 invalid_token', async () => {
    const now = Math.floor(Date.now() / 1000);
    const res = await request(app)
      .get('/whoami')
      .set('authorization', `Bearer ${await as.sign({ iat: now - 900, exp: now - 300 })}`);
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toMatch(
      /error="invalid_token", error_description="the access token expired"/,
    );
  });
});

describe('A6/A7: route policies', () => {
  it('A6: missing scope → 403 insufficient_scope with the scope attribute', async () => {
    const res = await request(app)
      .post('/write')
      .set('authorization', `Bearer ${await as.sign({ scope: 'api read' })}`);
    expect(res.status).toBe(403);
    expect(res.headers['www-authenticate']).toMatch(challenge('insufficient_scope'));
    expect(res.headers['www-authenticate']).toMatch(/, scope="api api.write"$/);
    expect(res.body.error).toBe('insufficient_scope');
  });

  it('A6: all required scopes present → 200', async () => {
    const res = await request(app)
      .post('/write')
      .set('authorization', `Bearer ${await as.sign({ scope: 'api.write api' })}`);
    expect(res.status).toBe(200);
  });

  it('A7: a client-credentials token whose sub looks like a user id → 403 on a user-only route', async () => {
    const token = await as.sign({ sub: 'alice', client_id: 'alice', scope: 'api' });
    const res = await request(app).get('/user-only').set('authorization', `Bearer ${token}`);
    expect(res.status).toBe(403);
    expect(res.body.error_description).toMatch(/user token/);
    expect(res.headers['www-authenticate']).toMatch(challenge('insufficient_scope'));
  });

  it('A7: a user token → 403 on a client-only route; each kind passes its own route', async () => {
    const user = await as.sign();
    const client = await as.sign({ sub: 'worker', client_id: 'worker' });
    expect((await request(app).get('/client-only').set('authorization', `Bearer ${user}`)).status).toBe(403);
    expect((await request(app).get('/client-only').set('authorization', `Bearer ${client}`)).status).toBe(
      200,
    );
    expect((await request(app).get('/user-only').set('authorization', `Bearer ${user}`)).status).toBe(200);
  });

  it('optional: no credentials pass anonymously, a bad token is still 401, a later guard challenges', async () => {
    expect((await request(app).get('/maybe')).body).toEqual({ anonymous: true });
    const bad = await request(app).get('/maybe').set('authorization', 'Bearer not.a.jwt');
    expect(bad.status).toBe(401);
    const guarded = await request(app).get('/maybe-user');
    expect(guarded.status).toBe(401);
    expect(guarded.headers['www-authenticate']).toBe(challenge());
  });

  it('a guard without requireAccessToken before it fails closed (500)', async () => {
    const res = await request(app)
      .get('/misconfigured')
      .set('authorization', `Bearer ${await as.sign()}`);
    expect(res.status).toBe(500);
    expect(res.body.error).toBe('server_error');
  });

  it('guards refuse invalid scope names at creation', () => {
    expect(() => requireScope()).toThrow(TypeError);
    expect(() => requireScope('a b')).toThrow(/not a valid scope token/);
    expect(() => requireScope('a"b')).toThrow(/not a valid scope token/);
  });
});

describe('A8: fail closed', () => {
  it('A8: JWKS endpoint down → 503, never 200', async () => {
    const cold = express();
    cold.get('/x', requireAccessToken({ issuer: as.issuer, audience: as.audience }), (_req, res) => {
      res.json({ ok: true });
    });
    as.jwksUp = false;
    try {
      const res = await request(cold)
        .get('/x')
        .set('authorization', `Bearer ${await as.sign()}`);
      expect(res.status).toBe(503);
      expect(res.body.error).toBe('temporarily_unavailable');
      expect(res.headers['www-authenticate']).toBeUndefined();
    } finally {
      as.jwksUp = true;
    }
  });
});
