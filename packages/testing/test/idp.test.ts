import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { TestBrowser } from '../src/browser.js';
import { startIdp } from '../src/idp.js';

describe('startIdp', () => {
  it('starts the sample IdP on a free 127.0.0.1 port with a matching issuer, and close() frees it', async () => {
    const idp = await startIdp({ accessTokenTtl: 30 });
    expect(idp.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(idp.issuer).toBe(idp.url);
    expect(idp.config.accessTokenTtl).toBe(30);
    expect(idp.workerPrivateJwk).toMatchObject({ kty: 'EC', d: expect.any(String) });
    const meta = (await (await fetch(`${idp.url}/.well-known/openid-configuration`)).json()) as {
      issuer: string;
    };
    expect(meta.issuer).toBe(idp.url);

    // The login helper works against it (the IdP's own demo client).
    const done = await new TestBrowser().login(`${idp.url}/demo/start`, {
      username: 'alice',
      password: 'alice',
    });
    expect(done.text).toContain('Signed in as Alice Liddell');

    const port = Number(new URL(idp.url).port);
    await idp.close();
    const probe = createServer();
    await new Promise<void>((resolve, reject) => {
      probe.once('error', reject);
      probe.listen(port, '127.0.0.1', resolve);
    });
    await new Promise<void>((resolve) => probe.close(() => resolve()));
  });

  it('two IdPs in one process do not share state (sessions, keys)', async () => {
    const [a, b] = await Promise.all([startIdp(), startIdp()]);
    try {
      const browser = new TestBrowser();
      await browser.login(`${a.url}/demo/start`, { username: 'alice', password: 'alice' });
      // Signed in at A; B still asks for a password.
      const atB = await browser.follow(`${b.url}/demo/start`);
      expect(atB.text).toMatch(/name="password"/);
      expect(a.publicJwks().keys[0]!.kid).not.toBe(b.publicJwks().keys[0]!.kid);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
});
