// The sample host with PAR (L16) as `npm start` runs it: the sample IdP requires pushed authorization
// requests for the `bff` client (IDP_REQUIRE_PAR defaults to true under the launcher), and the host
// pushes by default; BFF_PAR=false switches pushing off, and the IdP then refuses the sign-in.
import {
  getFreePort,
  type RunningBff,
  type RunningIdp,
  startBff,
  startIdp,
  TestBrowser,
} from '@gatehouse/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pushedAuthorizationRequestsFromEnv } from '../src/app.js';

describe('sample host and PAR (BFF_PAR)', () => {
  let idp: RunningIdp;
  let otherIdp: RunningIdp;
  let pushing: RunningBff;
  let notPushing: RunningBff;
  beforeAll(async () => {
    // One IdP per host: each registers exactly one redirect URI for `bff`.
    const port = await getFreePort();
    const otherPort = await getFreePort();
    idp = await startIdp({
      bffBaseUrl: `http://localhost:${port}`,
      requirePushedAuthorizationRequests: true,
    });
    otherIdp = await startIdp({
      bffBaseUrl: `http://localhost:${otherPort}`,
      requirePushedAuthorizationRequests: true,
    });
    pushing = await startBff({ port, issuer: idp.issuer });
    notPushing = await startBff({
      port: otherPort,
      issuer: otherIdp.issuer,
      pushedAuthorizationRequests: pushedAuthorizationRequestsFromEnv('false'),
    });
  });
  afterAll(async () => {
    await pushing?.close();
    await notPushing?.close();
    await idp?.close();
    await otherIdp?.close();
  });

  it('BFF_PAR: unset/auto → "auto", true → "always", false → "never"; anything else throws with the fix', () => {
    expect(pushedAuthorizationRequestsFromEnv(undefined)).toBe('auto');
    expect(pushedAuthorizationRequestsFromEnv('')).toBe('auto');
    expect(pushedAuthorizationRequestsFromEnv('auto')).toBe('auto');
    expect(pushedAuthorizationRequestsFromEnv('true')).toBe('always');
    expect(pushedAuthorizationRequestsFromEnv('FALSE')).toBe('never');
    for (const bad of ['yes', '1', 'on', 'never']) {
      expect(() => pushedAuthorizationRequestsFromEnv(bad)).toThrow(
        /BFF_PAR must be true \(always push\), false \(never push\) or auto/,
      );
    }
  });

  it('L16: with the defaults the sign-in is pushed (only client_id and request_uri in the browser) and works', async () => {
    const browser = new TestBrowser();
    const done = await browser.login(`${pushing.url}/bff/login`, { username: 'alice', password: 'alice' });
    const authz = new URL(done.hops[0]!.location!);
    expect(authz.origin).toBe(idp.issuer);
    expect([...authz.searchParams.keys()].sort()).toEqual(['client_id', 'request_uri']);
    const res = await browser.fetch(`${pushing.url}/local/whoami`, {
      headers: { 'x-csrf': '1' },
      initiator: `${pushing.url}/`,
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { sub: string }).sub).toBe('alice');
  });

  it('L16: BFF_PAR=false against an IdP that requires PAR → the SPA error route /?error=invalid_request, no session', async () => {
    const browser = new TestBrowser();
    const start = await browser.follow(`${notPushing.url}/bff/login`, { initiator: `${notPushing.url}/` });
    const authz = new URL(start.hops[0]!.location!);
    expect(authz.searchParams.get('response_type')).toBe('code');
    expect(authz.searchParams.has('request_uri')).toBe(false);
    const callback = start.hops.find((h) => h.url.startsWith(`${notPushing.url}/bff/callback`))!;
    expect(new URL(callback.url).searchParams.get('error')).toBe('invalid_request');
    expect(callback.status).toBe(302);
    expect(callback.location).toBe(`${notPushing.url}/?error=invalid_request`);
    expect(start.hops.flatMap((h) => h.setCookie).some((c) => /^__Host-bff=[^;]/.test(c))).toBe(false);
    const user = await browser.fetch(`${notPushing.url}/bff/user`, {
      headers: { 'x-csrf': '1' },
      initiator: `${notPushing.url}/`,
    });
    expect(user.status).toBe(401);
  });
});
