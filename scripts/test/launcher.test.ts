import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { APPS, deriveEnv, portOf } from '../launcher/apps.js';
import { findTakenPorts, isPortFree, portTakenMessage, prettyLine } from '../launcher/lib.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const idp = APPS.find((a) => a.name === 'idp')!;
let blocker: Server;
let takenPort: number;

beforeAll(async () => {
  blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  takenPort = (blocker.address() as { port: number }).port;
});
afterAll(() => new Promise<void>((resolve) => blocker.close(() => resolve())));

describe('launcher: port checks', () => {
  it('sees a taken port as taken and a free one as free', async () => {
    expect(await isPortFree(takenPort, '127.0.0.1')).toBe(false);
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const freePort = (probe.address() as { port: number }).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    expect(await isPortFree(freePort, '127.0.0.1')).toBe(true);
  });

  it('names the port, the app and the env var to change', async () => {
    const taken = await findTakenPorts([idp], { IDP_PORT: String(takenPort) });
    expect(taken).toHaveLength(1);
    const message = portTakenMessage(taken[0]!);
    expect(message).toContain(`Port ${takenPort} is already in use on 127.0.0.1`);
    expect(message).toContain('Identity provider (idp)');
    expect(message).toMatch(/IDP_PORT=\d+ npm start/);
  });

  it('`npm start`’s launcher fails at once, before starting anything, when a port is taken', async () => {
    const child = spawn(
      process.execPath,
      ['--conditions=@gatehouse/source', '--import', 'tsx', 'scripts/launcher/main.ts'],
      {
        cwd: root,
        env: { ...process.env, IDP_PORT: String(takenPort), NO_COLOR: '1' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => {
      stdout += c;
    });
    child.stderr.on('data', (c: Buffer) => {
      stderr += c;
    });
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).toBe(1);
    expect(stderr).toContain(`Port ${takenPort} is already in use`);
    expect(stderr).toContain('IDP_PORT=');
    expect(stdout).not.toContain('starting idp');
  }, 20_000);

  it('rejects a port env var that is not a port, naming it', () => {
    expect(() => portOf(idp, { IDP_PORT: 'abc' })).toThrow(/IDP_PORT must be a TCP port number/);
  });
});

describe('launcher: environment and output', () => {
  it('derives ISSUER and BFF_BASE_URL from the ports unless given', () => {
    expect(deriveEnv({ IDP_PORT: '4100', BFF_PORT: '3100' })).toMatchObject({
      ISSUER: 'http://127.0.0.1:4100',
      BFF_BASE_URL: 'http://localhost:3100',
      API_URL: 'http://127.0.0.1:4001',
    });
    expect(deriveEnv({ IDP_PORT: '4100', ISSUER: 'http://idp.test' }).ISSUER).toBe('http://idp.test');
  });

  it('gives the demo short-lived access tokens unless ACCESS_TOKEN_TTL is set', () => {
    expect(deriveEnv({}).ACCESS_TOKEN_TTL).toBe('60');
    expect(deriveEnv({ ACCESS_TOKEN_TTL: '300' }).ACCESS_TOKEN_TTL).toBe('300');
  });

  it('L16: runs the suite with PAR required by the IdP unless IDP_REQUIRE_PAR says otherwise', () => {
    expect(deriveEnv({}).IDP_REQUIRE_PAR).toBe('true');
    expect(deriveEnv({ IDP_REQUIRE_PAR: 'false' }).IDP_REQUIRE_PAR).toBe('false');
  });

  it('D1: runs the suite with DPoP-bound BFF sessions unless BFF_DPOP says otherwise', () => {
    expect(deriveEnv({}).BFF_DPOP).toBe('true');
    expect(deriveEnv({ BFF_DPOP: 'false' }).BFF_DPOP).toBe('false');
  });

  it('turns pino JSON lines into readable ones and leaves others alone', () => {
    const line = JSON.stringify({
      level: 30,
      time: 1,
      pid: 2,
      hostname: 'h',
      name: 'idp',
      msg: 'signed in',
      sub: 'alice',
    });
    expect(prettyLine(line)).toBe('INFO  signed in  sub=alice');
    expect(prettyLine('plain text')).toBe('plain text');
    expect(prettyLine('{not json')).toBe('{not json');
  });
});
