// createTokenFetch against the real IdP; a scripted API (real HTTP) for the 401 cases, and the real
// sample API for the happy path.
import { type RunningApi, type RunningIdp, startApi, startIdp } from '@gatehouse/testing';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createTokenFetch, createTokenManager } from '../src/index.js';
import { type FakeServer, startFakeServer } from './helpers.js';

let idp: RunningIdp;
let api: FakeServer;
let sampleApi: RunningApi;

beforeAll(async () => {
  idp = await startIdp({ accessTokenTtl: 120 });
  api = await startFakeServer();
  sampleApi = await startApi({ issuer: idp.issuer });
});
afterAll(async () => {
  await sampleApi?.close();
  await api?.close();
  await idp?.close();
});
beforeEach(() => {
  api.requests.length = 0;
});

function setup() {
  const tokens = createTokenManager({
    clients: {
      reports: {
        issuer: idp.issuer,
        clientId: 'worker',
        clientSecret: 'worker-secret',
        scope: 'api.reports',
      },
    },
  });
  return { tokens, apiFetch: createTokenFetch(tokens, 'reports') };
}

/** The API rejects the first token it sees (as if revoked), accepts any other. */
function rejectFirstToken(challenge = 'Bearer error="invalid_token"') {
  let first: string | undefined;
  api.reply = (request) => {
    const auth = String(request.headers.authorization);
    first ??= auth;
    return auth === first
      ? { status: 401, headers: { 'www-authenticate': challenge }, json: { error: 'invalid_token' } }
      : { status: 200, json: { ok: true, body: request.body } };
  };
}

async function tokenRequests(fn: () => Promise<unknown>): Promise<number> {
  const before = idp.counters.token();
  await fn();
  return idp.counters.token() - before;
}

describe('createTokenFetch', () => {
  it('calls the real sample API with a Bearer token (200)', async () => {
    const { apiFetch } = setup();
    const response = await apiFetch(`${sampleApi.url}/api/reports`);
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ requestedBy: 'worker' });
  });

  it('T8: a 401 invalid_token on GET → one renewal, one retry with the new token', async () => {
    const { apiFetch } = setup();
    rejectFirstToken();
    let response: Response | undefined;
    expect(await tokenRequests(async () => (response = await apiFetch(`${api.url}/data`)))).toBe(2);
    expect(response?.status).toBe(200);
    expect(api.requests).toHaveLength(2);
    expect(api.requests[0]!.headers.authorization).not.toBe(api.requests[1]!.headers.authorization);
    expect(api.requests[1]!.headers.authorization).toMatch(/^Bearer ey/);
  });

  it('T8: an API that always answers 401 → exactly 2 token requests, 2 API calls, then the 401', async () => {
    const { apiFetch } = setup();
    api.reply = () => ({ status: 401, headers: { 'www-authenticate': 'Bearer error="invalid_token"' } });
    let response: Response | undefined;
    expect(await tokenRequests(async () => (response = await apiFetch(`${api.url}/data`)))).toBe(2);
    expect(response?.status).toBe(401);
    expect(api.requests).toHaveLength(2);
  });

  it('T8: a POST is never replayed: the 401 comes back as is, no renewal', async () => {
    const { tokens, apiFetch } = setup();
    await tokens.getAccessToken('reports');
    rejectFirstToken();
    let response: Response | undefined;
    expect(
      await tokenRequests(async () => {
        response = await apiFetch(`${api.url}/data`, { method: 'POST', body: 'x=1' });
      }),
    ).toBe(0);
    expect(response?.status).toBe(401);
    expect(api.requests).toHaveLength(1);
  });

  it('T8: a PUT with a stream body is not replayed; a PUT with a string body is', async () => {
    const { apiFetch } = setup();
    rejectFirstToken();
    const stream = new ReadableStream({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('streamed'));
        controller.close();
      },
    });
    const streamed = await apiFetch(`${api.url}/data`, {
      method: 'PUT',
      body: stream,
      duplex: 'half',
    } as RequestInit);
    expect(streamed.status).toBe(401);
    expect(api.requests).toHaveLength(1);

    const { apiFetch: second } = setup();
    rejectFirstToken();
    const replayed = await second(`${api.url}/data`, { method: 'PUT', body: 'same body' });
    expect(replayed.status).toBe(200);
    expect(await replayed.json()).toMatchObject({ body: 'same body' });
    expect(api.requests).toHaveLength(3);
  });

  it('T8: a 401 naming another error (invalid_request) is not a token problem: no retry', async () => {
    const { apiFetch } = setup();
    rejectFirstToken('Bearer error="invalid_request"');
    const response = await apiFetch(`${api.url}/data`);
    expect(response.status).toBe(401);
    expect(api.requests).toHaveLength(1);
  });

  it('T8: a bare 401 (no error code) is treated as invalid_token', async () => {
    const { apiFetch } = setup();
    rejectFirstToken('Bearer realm="api"');
    expect((await apiFetch(`${api.url}/data`)).status).toBe(200);
    expect(api.requests).toHaveLength(2);
  });

  it("keeps the caller's headers, accepts a Request, and overrides any Authorization given", async () => {
    const { apiFetch } = setup();
    api.reply = () => ({ status: 200, json: {} });
    await apiFetch(
      new Request(`${api.url}/r`, { headers: { 'x-trace': 'abc', authorization: 'Basic Zm9vOmJhcg==' } }),
    );
    await apiFetch(`${api.url}/i`, { headers: { 'x-trace': 'def' } });
    expect(api.requests.map((r) => r.headers['x-trace'])).toEqual(['abc', 'def']);
    for (const r of api.requests) expect(r.headers.authorization).toMatch(/^Bearer /);
  });

  it('rejects an unknown client name at creation', () => {
    const { tokens } = setup();
    expect(() => createTokenFetch(tokens, 'nope')).toThrow(TypeError);
  });
});
