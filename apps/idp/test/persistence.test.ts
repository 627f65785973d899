import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getFreePort, type RunningIdp, startIdp, TestBrowser } from '@gatehouse/testing';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import * as oidc from 'openid-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  COOKIE_KEYS_FILE,
  LOCK_FILE,
  SAMPLE_API_AUDIENCE,
  SIGNING_KEYS_FILE,
  STORE_FILE,
} from '../src/app.js';
import { type Receiver, startReceiver } from './receiver.js';

const insecure = { execute: [oidc.allowInsecureRequests] };
const repoRoot = fileURLToPath(new URL('../../..', import.meta.url));

let rp: Receiver;
const dirs: string[] = [];
const idps: RunningIdp[] = [];

beforeAll(async () => {
  rp = await startReceiver();
});
afterEach(async () => {
  for (const idp of idps.splice(0)) await idp.close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
afterAll(async () => {
  await rp?.close();
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'idp-data-'));
  dirs.push(dir);
  return dir;
}

async function start(options: Parameters<typeof startIdp>[0]): Promise<RunningIdp> {
  const idp = await startIdp({ bffBaseUrl: rp.url, ...options });
  idps.push(idp);
  return idp;
}

async function stop(idp: RunningIdp): Promise<void> {
  idps.splice(idps.indexOf(idp), 1);
  await idp.close();
}

const bffClient = (issuer: string) =>
  oidc.discovery(new URL(issuer), 'bff', undefined, oidc.ClientSecretBasic('bff-secret'), insecure);

/** Signs alice in as the `bff` client; returns the browser (it holds the IdP session) and tokens. */
async function signIn(issuer: string) {
  const config = await bffClient(issuer);
  const browser = new TestBrowser();
  const verifier = oidc.randomPKCECodeVerifier();
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: `${rp.url}/bff/callback`,
    scope: 'openid profile offline_access api',
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
  });
  const done = await browser.login(url, { username: 'alice', password: 'alice' });
  const tokens = await oidc.authorizationCodeGrant(config, new URL(done.url), { pkceCodeVerifier: verifier });
  expect(tokens.refresh_token).toBeTruthy();
  return { browser, tokens };
}

/** A second authorization in the same browser: true when the IdP session carried it (no login page). */
async function silentlySignedIn(issuer: string, browser: TestBrowser): Promise<boolean> {
  const config = await bffClient(issuer);
  const done = await browser.follow(
    oidc.buildAuthorizationUrl(config, {
      redirect_uri: `${rp.url}/bff/callback`,
      scope: 'openid',
      prompt: 'none',
      code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()),
      code_challenge_method: 'S256',
    }),
  );
  const back = new URL(done.url);
  return back.pathname === '/bff/callback' && back.searchParams.has('code');
}

async function refresh(issuer: string, refreshToken: string) {
  const config = await bffClient(issuer);
  const tokens = await oidc.refreshTokenGrant(config, refreshToken);
  // Signed with the key of before the restart (persisted), for the sample API.
  await jwtVerify(tokens.access_token, createRemoteJWKSet(new URL(`${issuer}/jwks`)), {
    issuer,
    audience: SAMPLE_API_AUDIENCE,
    typ: 'at+jwt',
  });
  return tokens;
}

describe('dataDir: an IdP restarted on the same folder keeps its grants', () => {
  it('R5a: a refresh token and the IdP session issued before the restart work after it (no save step)', async () => {
    const dataDir = tempDir();
    const first = await start({ dataDir });
    const { browser, tokens } = await signIn(first.url);
    const port = Number(new URL(first.url).port);
    const jwks = first.publicJwks();
    // close() stops timers and closes the file; it writes nothing (the child-process test below
    // shows the same with SIGKILL, where nothing runs at all).
    await stop(first);
    expect(existsSync(join(dataDir, STORE_FILE))).toBe(true);
    expect(existsSync(join(dataDir, SIGNING_KEYS_FILE))).toBe(true);
    expect(existsSync(join(dataDir, COOKIE_KEYS_FILE))).toBe(true);

    const second = await start({ dataDir, port });
    expect(second.url).toBe(first.url);
    expect(second.publicJwks()).toEqual(jwks);
    const refreshed = await refresh(second.url, tokens.refresh_token!);
    expect(refreshed.refresh_token).toBeTruthy();
    expect(refreshed.refresh_token).not.toBe(tokens.refresh_token); // rotation goes on
    expect(refreshed.claims()).toMatchObject({ sub: 'alice', iss: second.issuer });
    expect(await silentlySignedIn(second.url, browser)).toBe(true);
  });

  it('R2: a rotated refresh token stays spent across a restart; its reuse revokes the grant', async () => {
    const dataDir = tempDir();
    const first = await start({ dataDir });
    const { tokens } = await signIn(first.url);
    const port = Number(new URL(first.url).port);
    const rotated = await refresh(first.url, tokens.refresh_token!);
    await stop(first);

    const second = await start({ dataDir, port });
    const config = await bffClient(second.url);
    await expect(oidc.refreshTokenGrant(config, tokens.refresh_token!)).rejects.toMatchObject({
      error: 'invalid_grant',
    });
    await stop(second);

    // The revocation that reuse caused is on disk as well.
    const third = await start({ dataDir, port });
    await expect(
      oidc.refreshTokenGrant(await bffClient(third.url), rotated.refresh_token!),
    ).rejects.toMatchObject({ error: 'invalid_grant' });
  });

  it('without dataDir a restart forgets everything (the default, unchanged)', async () => {
    const first = await start({});
    const { tokens } = await signIn(first.url);
    const port = Number(new URL(first.url).port);
    await stop(first);
    const second = await start({ port });
    await expect(
      oidc.refreshTokenGrant(await bffClient(second.url), tokens.refresh_token!),
    ).rejects.toMatchObject({ error: 'invalid_grant' });
  });

  it('keeps the folder and its files (live tokens, private keys) to the owner: 0700 and 0600', async () => {
    const dataDir = join(tempDir(), 'fresh');
    const idp = await start({ dataDir });
    await signIn(idp.url);
    const mode = (file: string) => statSync(join(dataDir, file)).mode & 0o777;
    expect(mode('')).toBe(0o700);
    for (const file of [STORE_FILE, SIGNING_KEYS_FILE, COOKIE_KEYS_FILE, LOCK_FILE])
      expect(mode(file)).toBe(0o600);
  });

  it('rejects a dataDir that is not a folder path, and a second IdP on a folder in use', async () => {
    await expect(start({ dataDir: '' })).rejects.toThrow(/dataDir must be a folder path/);
    const dataDir = tempDir();
    await start({ dataDir });
    await expect(start({ dataDir })).rejects.toMatchObject({ code: 'ERR_IDP_DATA_DIR_IN_USE' });
  });
});

/** Starts `src/server.ts` as its own process, as `pnpm --filter @gatehouse/sample-idp start` does. */
function spawnIdp(port: number, dataDir: string): { child: ChildProcess; output: () => string } {
  let output = '';
  const child = spawn(
    process.execPath,
    ['--conditions=@gatehouse/source', '--import', 'tsx', 'apps/idp/src/server.ts'],
    {
      cwd: repoRoot,
      env: {
        ...process.env,
        IDP_PORT: String(port),
        IDP_DATA_DIR: dataDir,
        DATA_DIR: dataDir,
        BFF_BASE_URL: rp.url,
        LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  child.stdout?.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (output += c.toString()));
  return { child, output: () => output };
}

async function waitHealthy(url: string, started: ReturnType<typeof spawnIdp>): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (started.child.exitCode !== null) throw new Error(`the IdP exited early:\n${started.output()}`);
    const ok = await fetch(`${url}/health`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the IdP did not answer /health within 30 s:\n${started.output()}`);
}

describe('dataDir across a real SIGKILL (the IdP as its own process)', () => {
  const children: ChildProcess[] = [];
  afterEach(() => {
    for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
  });

  it('R5a: IdP killed with SIGKILL and restarted: the refresh token and the IdP session still work', async () => {
    const dataDir = tempDir();
    const port = await getFreePort();
    const url = `http://127.0.0.1:${port}`;
    const first = spawnIdp(port, dataDir);
    children.push(first.child);
    await waitHealthy(url, first);
    const { browser, tokens } = await signIn(url);

    const exited = new Promise<NodeJS.Signals | null>((resolve) =>
      first.child.once('exit', (_code, signal) => resolve(signal)),
    );
    first.child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');

    const second = spawnIdp(port, dataDir);
    children.push(second.child);
    await waitHealthy(url, second);
    const refreshed = await refresh(url, tokens.refresh_token!);
    expect(refreshed.claims()).toMatchObject({ sub: 'alice' });
    expect(await silentlySignedIn(url, browser)).toBe(true);
    expect(second.output()).toMatch(/taking over a stale store lock/);
  }, 90_000);
});
