// The sample API over real HTTP with real tokens from the sample IdP: route policies (user vs client
// tokens, scopes), per-user isolation, input validation, and what never appears in responses or logs.
import { Writable } from 'node:stream';
import { type ApiTokenSource, type RunningApi, startApi, startApiTokenSource } from '@gatehouse/testing';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

let tokens: ApiTokenSource;
let api: RunningApi;
let alice: string;
let bob: string;
let worker: string;
const logLines: string[] = [];

beforeAll(async () => {
  tokens = await startApiTokenSource();
  const sink = new Writable({
    write(chunk, _enc, done) {
      logLines.push(String(chunk));
      done();
    },
  });
  api = await startApi({ issuer: tokens.idp.issuer, logger: pino({ level: 'debug' }, sink) });
  alice = (await tokens.userTokens('alice')).access_token;
  bob = (await tokens.userTokens('bob')).access_token;
  worker = await tokens.clientToken();
}, 30_000);
afterAll(async () => {
  await api?.close();
  await tokens?.close();
});

function call(path: string, token?: string, init: RequestInit & { json?: unknown } = {}) {
  const headers = new Headers(init.headers);
  if (token) headers.set('authorization', `Bearer ${token}`);
  let body = init.body;
  if (init.json !== undefined) {
    headers.set('content-type', 'application/json');
    body = JSON.stringify(init.json);
  }
  return fetch(`${api.url}${path}`, { ...init, headers, body });
}

describe('health and authentication', () => {
  it('GET /health needs no token', async () => {
    const res = await call('/health');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok' });
  });

  it('A1/A10: /api/todos without a token → 401 with bare Bearer and DPoP challenges (both accepted)', async () => {
    const res = await call('/api/todos');
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(
      /^Bearer realm="urn:gatehouse:sample-api", DPoP realm="urn:gatehouse:sample-api", algs="[^"]*ES256[^"]*"$/,
    );
  });

  it('A1: token in the header and the query → 400 invalid_request', async () => {
    const res = await call(`/api/todos?access_token=${alice}`, alice);
    expect(res.status).toBe(400);
    expect(res.headers.get('www-authenticate')).toMatch(/error="invalid_request"/);
    expect(await res.text()).not.toContain(alice);
  });

  it('A2: a bad token → 401 invalid_token', async () => {
    const res = await call('/api/todos', `${alice.slice(0, -4)}AAAA`);
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/error="invalid_token"/);
  });
});

describe('A7: user and client routes', () => {
  it('A7: a client-credentials token on /api/todos → 403', async () => {
    const res = await call('/api/todos', worker);
    expect(res.status).toBe(403);
    expect(((await res.json()) as any).error_description).toMatch(/user token/);
  });

  it('A7: a user token on /api/reports → 403; the worker token → 200 with totals', async () => {
    expect((await call('/api/reports', alice)).status).toBe(403);
    const res = await call('/api/reports', worker);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({
      requestedBy: 'worker',
      users: expect.any(Number),
      todos: expect.any(Number),
      done: expect.any(Number),
    });
  });

  it('whoami describes the caller (user and client) without the token', async () => {
    const user = await call('/api/whoami', alice);
    const text = await user.text();
    expect(JSON.parse(text)).toMatchObject({
      kind: 'user',
      sub: 'alice',
      client_id: 'bff',
      scopes: ['api'],
      aud: 'urn:gatehouse:sample-api',
      expiresAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
    });
    expect(text).not.toContain(alice);
    const client = await (await call('/api/whoami', worker)).json();
    expect(client).toMatchObject({
      kind: 'client',
      sub: 'worker',
      client_id: 'worker',
      scopes: ['api.reports'],
    });
  });
});

describe('todos: per-user and validated', () => {
  it('alice creates, updates and deletes her todos; bob can neither see nor touch them', async () => {
    const created = await call('/api/todos', alice, { method: 'POST', json: { title: '  buy milk ' } });
    expect(created.status).toBe(201);
    const todo = (await created.json()) as any;
    expect(todo).toMatchObject({ title: 'buy milk', done: false, id: expect.any(String) });
    expect(created.headers.get('location')).toBe(`/api/todos/${todo.id}`);

    expect(await (await call('/api/todos', alice)).json()).toEqual([todo]);
    expect(await (await call('/api/todos', bob)).json()).toEqual([]);
    expect((await call(`/api/todos/${todo.id}`, bob, { method: 'PATCH', json: { done: true } })).status).toBe(
      404,
    );
    expect((await call(`/api/todos/${todo.id}`, bob, { method: 'DELETE' })).status).toBe(404);

    const updated = await call(`/api/todos/${todo.id}`, alice, { method: 'PATCH', json: { done: true } });
    expect(updated.status).toBe(200);
    expect(await updated.json()).toMatchObject({ id: todo.id, done: true, title: 'buy milk' });

    expect((await call(`/api/todos/${todo.id}`, alice, { method: 'DELETE' })).status).toBe(204);
    expect(await (await call('/api/todos', alice)).json()).toEqual([]);
    expect((await call(`/api/todos/${todo.id}`, alice, { method: 'DELETE' })).status).toBe(404);
  });

  const invalid: Array<[string, RequestInit & { json?: unknown }, number, RegExp]> = [
    ['no title', { method: 'POST', json: {} }, 400, /"title" must be a string/],
    ['a numeric title', { method: 'POST', json: { title: 5 } }, 400, /"title" must be a string/],
    ['an empty title', { method: 'POST', json: { title: '   ' } }, 400, /must not be empty/],
    ['a 201-character title', { method: 'POST', json: { title: 'x'.repeat(201) } }, 400, /at most 200/],
    ['a control character', { method: 'POST', json: { title: 'a\u0007b' } }, 400, /control characters/],
    [
      'an unknown field',
      { method: 'POST', json: { title: 'x', owner: 'bob' } },
      400,
      /unknown field "owner"/,
    ],
    [
      'done as a string',
      { method: 'POST', json: { title: 'x', done: 'yes' } },
      400,
      /"done" must be a boolean/,
    ],
    ['an array body', { method: 'POST', json: [{ title: 'x' }] }, 400, /JSON object/],
    [
      'malformed JSON',
      { method: 'POST', body: '{"title":', headers: { 'content-type': 'application/json' } },
      400,
      /not valid JSON/,
    ],
    [
      'a text/plain body',
      { method: 'POST', body: 'title=x', headers: { 'content-type': 'text/plain' } },
      415,
      /application\/json/,
    ],
  ];
  for (const [name, init, status, description] of invalid) {
    it(`POST /api/todos with ${name} → ${status} with a clear message`, async () => {
      const res = await call('/api/todos', alice, init);
      expect(res.status).toBe(status);
      const body = (await res.json()) as any;
      expect(body.error_description).toMatch(description);
    });
  }

  it('PATCH needs at least one field; an unknown id is 404', async () => {
    const { id } = (await (
      await call('/api/todos', bob, { method: 'POST', json: { title: 'x' } })
    ).json()) as any;
    const empty = await call(`/api/todos/${id}`, bob, { method: 'PATCH', json: {} });
    expect(empty.status).toBe(400);
    expect(((await empty.json()) as any).error_description).toMatch(/at least one/);
    expect((await call('/api/todos/not-a-uuid', bob, { method: 'PATCH', json: { done: true } })).status).toBe(
      404,
    );
  });

  it('A6: a user token without scope api → 403 insufficient_scope', async () => {
    const now = Math.floor(Date.now() / 1000);
    const token = await tokens.idp.sign(
      {
        iss: tokens.idp.issuer,
        aud: 'urn:gatehouse:sample-api',
        sub: 'alice',
        client_id: 'bff',
        iat: now,
        exp: now + 60,
        jti: 'j1',
        scope: 'openid',
      },
      { typ: 'at+jwt' },
    );
    const res = await call('/api/todos', token);
    expect(res.status).toBe(403);
    // The error sits on the Bearer challenge (the scheme used); DPoP is offered alongside.
    expect(res.headers.get('www-authenticate')).toMatch(
      /^Bearer realm="[^"]+", error="insufficient_scope", error_description="[^"]+", scope="api", DPoP realm="[^"]+", algs="[^"]+"$/,
    );
  });
});

describe('echo (user or none)', () => {
  it('echoes method, path, query and selected headers; never the token or cookies', async () => {
    const res = await call('/api/echo/a/b?x=1', alice, {
      method: 'POST',
      body: 'hello',
      headers: { 'content-type': 'text/plain', cookie: 'sid=secret-cookie', 'x-request-id': 'r1' },
    });
    const text = await res.text();
    expect(res.status).toBe(200);
    const body = JSON.parse(text);
    expect(body).toMatchObject({
      method: 'POST',
      path: '/api/echo/a/b',
      query: { x: '1' },
      headers: { 'content-type': 'text/plain', 'x-request-id': 'r1' },
      authorizationScheme: 'Bearer',
      auth: { kind: 'user', sub: 'alice', client_id: 'bff' },
      body: 'hello',
    });
    expect(body.headerNames).toContain('cookie');
    expect(text).not.toContain(alice);
    expect(text).not.toContain('secret-cookie');
  });

  it('without a token it answers anonymously; a bad token is still 401', async () => {
    expect(await (await call('/api/echo')).json()).toMatchObject({ auth: null, method: 'GET' });
    expect((await call('/api/echo', 'bad.token.here')).status).toBe(401);
  });
});

describe('logs and lazy discovery', () => {
  it('request lines carry path, status and caller, never tokens or headers', async () => {
    await call('/api/whoami', alice);
    await call(`/api/todos?access_token=${bob}`, bob);
    const all = logLines.join('');
    expect(all).toContain('"path":"/api/whoami"');
    expect(all).toContain('"path":"/api/todos","status":400');
    expect(all).toContain('"sub":"alice"');
    for (const token of [alice, bob, worker]) {
      expect(all).not.toContain(token);
      expect(all).not.toContain(token.split('.')[2]);
    }
    expect(all.toLowerCase()).not.toContain('authorization');
  });

  it('starts before its IdP: health is 200, token requests get 503 until the issuer answers', async () => {
    const early = await startApi({ issuer: 'http://127.0.0.1:9' });
    try {
      expect((await fetch(`${early.url}/health`)).status).toBe(200);
      const res = await fetch(`${early.url}/api/whoami`, { headers: { authorization: `Bearer ${alice}` } });
      expect(res.status).toBe(503);
      expect(((await res.json()) as any).error).toBe('temporarily_unavailable');
    } finally {
      await early.close();
    }
  });
});
