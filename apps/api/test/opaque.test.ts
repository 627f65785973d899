// A9 in the sample API: with the IdP issuing opaque tokens, the API introspects them with its own
// client credentials (client `api`) and the same route policies hold.
import { type ApiTokenSource, type RunningApi, startApi, startApiTokenSource } from '@gatehouse/testing';
import { afterAll, beforeAll, expect, it } from 'vitest';

let tokens: ApiTokenSource;
let api: RunningApi;

beforeAll(async () => {
  tokens = await startApiTokenSource({ accessTokenFormat: 'opaque' });
  api = await startApi({
    issuer: tokens.idp.issuer,
    introspection: { clientId: 'api', clientSecret: 'api-secret' },
  });
}, 30_000);
afterAll(async () => {
  await api?.close();
  await tokens?.close();
});

const get = (path: string, token: string) =>
  fetch(`${api.url}${path}`, { headers: { authorization: `Bearer ${token}` } });

it('A9: an opaque user token reaches the todos; an opaque client token the reports', async () => {
  const { access_token: user } = await tokens.userTokens('alice');
  const client = await tokens.clientToken();
  expect(user).not.toContain('.');
  expect((await get('/api/todos', user)).status).toBe(200);
  expect(await (await get('/api/whoami', user)).json()).toMatchObject({
    kind: 'user',
    sub: 'alice',
    source: 'introspection',
  });
  expect((await get('/api/reports', client)).status).toBe(200);
  expect((await get('/api/todos', client)).status).toBe(403);
});

it('A9: an unknown opaque token → 401 invalid_token', async () => {
  const res = await get('/api/todos', 'not-a-real-token');
  expect(res.status).toBe(401);
  expect(res.headers.get('www-authenticate')).toMatch(
    /error="invalid_token", error_description="the access token is not active"/,
  );
});
