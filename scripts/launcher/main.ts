// `npm start` (via scripts/run.mjs): starts every sample app that exists, one after the other,
// waits for each to be healthy, prints where to go, and stops everything on Ctrl-C / SIGTERM.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { APPS, deriveEnv, type Env, type LaunchApp, portOf } from './apps.js';
import {
  findTakenPorts,
  type Output,
  portTakenMessage,
  prefix,
  presentApps,
  type Running,
  startApp,
  stopAll,
  waitUntilReady,
} from './lib.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const color = process.stdout.isTTY === true && !process.env.NO_COLOR;
const out: Output = { write: (line) => process.stdout.write(line) };
const bold = (s: string) => (color ? `\u001b[1m${s}\u001b[0m` : s);
const red = (s: string) => (color ? `\u001b[31m${s}\u001b[0m` : s);

function banner(apps: readonly LaunchApp[], env: Env): string {
  const lines = ['', bold('Gatehouse sample suite is running'), ''];
  for (const app of apps) {
    const port = portOf(app, env);
    const url = port !== undefined && app.url ? app.url(port) : '(no address)';
    lines.push(`  ${app.title.padEnd(18)} ${url.padEnd(26)} ${app.hint ?? ''}`);
  }
  const names = new Set(apps.map((a) => a.name));
  const idpUrl = env.ISSUER ?? 'http://127.0.0.1:4000';
  lines.push('', bold('Guided tour'));
  if (names.has('bff')) {
    const bffUrl = env.BFF_BASE_URL ?? 'http://localhost:3000';
    lines.push(
      `  1. Open ${bffUrl} and choose "Sign in": the browser goes to the IdP (${idpUrl}), another site.`,
      '  2. Sign in as alice / alice. Back in the app you see your claims; the tokens stay in the BFF',
      '     (DevTools → Application → Cookies shows one HttpOnly session cookie and nothing else).',
      `  3. Add a todo: the BFF adds the access token. Tokens live ${env.ACCESS_TOKEN_TTL ?? '60'} s here, so keep clicking`,
      '     and watch the BFF refresh them (the refresh_token requests in the idp lines below).',
      names.has('worker')
        ? '  4. The worker lines show machine-to-machine calls with client credentials.'
        : '  4. (The worker joins here once apps/worker exists.)',
      '  5. Sign out: the IdP ends its session and sends a back-channel logout to the BFF.',
    );
  } else {
    lines.push(
      `  1. Open ${idpUrl}/ and choose "Try signing in": the IdP's own login page.`,
      '  2. Sign in as alice / alice (or bob / bob); a wrong password shows an error.',
      `  3. Discovery: ${idpUrl}/.well-known/openid-configuration   keys: ${idpUrl}/jwks`,
      '  (The app, the API and the worker join this list as their apps/<name>/src/server.ts appear.)',
    );
  }
  lines.push('', 'Press Ctrl-C to stop everything.', '');
  return lines.join('\n');
}

async function main(): Promise<number> {
  const env = deriveEnv({ ...process.env });
  const apps = presentApps(root, APPS);
  if (apps.length === 0) {
    console.error(red('No apps to start: none of apps/*/src/server.ts exists.'));
    return 1;
  }

  // Check every port first, so a clash fails at once instead of half-way through the start.
  const taken = await findTakenPorts(apps, env);
  if (taken.length > 0) {
    for (const t of taken) console.error(red(`\n✖ ${portTakenMessage(t)}`));
    console.error('');
    return 1;
  }

  const width = Math.max(...apps.map((a) => a.name.length));
  const running: Running[] = [];
  let stopping = false;
  const stop = async (code: number): Promise<number> => {
    if (!stopping) {
      stopping = true;
      console.log(`\nstopping ${running.map((r) => r.app.name).join(', ')}…`);
      await stopAll(running);
    }
    return code;
  };

  const signalled = new Promise<number>((resolve) => {
    const onSignal = () => resolve(stop(0));
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  });

  const started = (async (): Promise<number> => {
    for (const app of apps) {
      if (stopping) return 0;
      const port = portOf(app, env);
      console.log(`▶ starting ${app.name}${port !== undefined ? ` on port ${port}` : ''}`);
      const r = startApp(app, root, env, prefix(app, width, color), out);
      running.push(r);
      try {
        await waitUntilReady(r);
      } catch (error) {
        console.error(red(`\n✖ ${(error as Error).message}. Its log lines above say why.`));
        return stop(1);
      }
    }
    console.log(banner(apps, env));
    // Any app that dies takes the suite down, so nothing keeps running half-broken.
    const firstExit = await Promise.race(running.map((r) => r.exited.then((code) => ({ r, code }))));
    if (stopping) return 0;
    console.error(
      red(`\n✖ ${firstExit.r.app.name} stopped (exit code ${firstExit.code}); stopping the others.`),
    );
    return stop(1);
  })();

  return Promise.race([started, signalled]);
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(red(`launcher: ${(error as Error).message}`));
    process.exit(1);
  },
);
