// Package smoke test: what `npm install @gatehouse/bff` would give a user, checked end to end.
// Packs the three public packages with pnpm (so `workspace:` ranges are rewritten and `prepack`
// builds them), inspects each tarball, runs publint (strict) and arethetypeswrong (esm-only),
// installs the tarballs into a scratch app OUTSIDE the workspace with npm, type-checks it strictly
// (skipLibCheck off) together with every TypeScript example of the package READMEs, and signs in
// through it against the sample IdP. Any missing file, `workspace:` range, lint finding, install
// warning or type error fails the run. Usage: `npm run smoke` (KEEP_SMOKE=1 keeps the scratch folder).
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  connectTestRedis,
  deleteRedisPrefix,
  getFreePort,
  redisUrl,
  startIdp,
  TestBrowser,
  uniqueRedisPrefix,
} from '@gatehouse/testing';
import { extractReadmeExamples } from './readme-examples.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
const PUBLIC_PACKAGES = ['token-manager', 'api-auth', 'bff'] as const;
const PNPM = ['npx', '--yes', 'pnpm@12.4.2'];
const REQUIRED_FILES = ['package.json', 'README.md', 'LICENSE', 'dist/index.js', 'dist/index.d.ts'];

function step(title: string): void {
  console.log(`\n\u25b6 smoke: ${title}`);
}

function fail(message: string): never {
  throw new Error(`smoke: ${message}`);
}

/** Runs a command, echoing its output; returns the output and fails the run on a non-zero exit. */
function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): string {
  const result = spawnSync(command, args, {
    cwd,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  const output = `${result.stdout ?? ''}${result.stderr ?? ''}`;
  if (output.trim()) console.log(output.trimEnd());
  if (result.status !== 0) fail(`${command} ${args.join(' ')} exited with ${result.status}`);
  return output;
}

interface Tarball {
  readonly name: string;
  readonly file: string;
}

async function packAll(destination: string): Promise<Tarball[]> {
  const tarballs: Tarball[] = [];
  for (const dir of PUBLIC_PACKAGES) {
    const cwd = join(root, 'packages', dir);
    const manifest = JSON.parse(await readFile(join(cwd, 'package.json'), 'utf8')) as {
      name: string;
      version: string;
    };
    run(PNPM[0]!, [...PNPM.slice(1), 'pack', '--pack-destination', destination], cwd);
    const file = join(
      destination,
      `${manifest.name.replace('@', '').replace('/', '-')}-${manifest.version}.tgz`,
    );
    tarballs.push({ name: manifest.name, file });
  }
  return tarballs;
}

function inspectTarball({ name, file }: Tarball): void {
  const entries = run('tar', ['tzf', file], root).split('\n').filter(Boolean);
  const files = new Set(entries.map((e) => e.replace(/^package\//, '')));
  for (const required of REQUIRED_FILES) {
    if (!files.has(required)) fail(`${name}: the tarball lacks ${required}`);
  }
  const stray = [...files].filter((f) => /^(src|test)\//.test(f) || f.endsWith('.tsbuildinfo'));
  if (stray.length > 0) fail(`${name}: the tarball ships files users do not need: ${stray.join(', ')}`);
  const manifest = spawnSync('tar', ['xzf', file, '-O', 'package/package.json'], { encoding: 'utf8' }).stdout;
  if (manifest.includes('workspace:')) fail(`${name}: package.json keeps a workspace: range`);
  if (manifest.includes('@gatehouse/source')) fail(`${name}: exports still name the source condition`);
  const size = spawnSync('stat', ['-c', '%s', file], { encoding: 'utf8' }).stdout.trim();
  console.log(`${name}: ${entries.length} files, ${(Number(size) / 1024).toFixed(1)} KiB packed`);
}

async function writeScratchApp(app: string, tarballs: Tarball[]): Promise<void> {
  const spec = (name: string) => {
    const tarball = tarballs.find((t) => t.name === name);
    if (!tarball) fail(`no tarball for ${name}`);
    return `file:${tarball.file}`;
  };
  const manifest = {
    name: 'gatehouse-smoke-app',
    private: true,
    type: 'module',
    dependencies: {
      '@gatehouse/api-auth': spec('@gatehouse/api-auth'),
      '@gatehouse/bff': spec('@gatehouse/bff'),
      '@gatehouse/token-manager': spec('@gatehouse/token-manager'),
      express: '^5.1.0',
      // The newest node-redis major: the packages accept 5 and 6; the workspace tests run on 5.
      redis: '^6.0.0',
    },
    devDependencies: { '@types/express': '^5.0.0', '@types/node': '^20.19.0', typescript: '5.9.3' },
    // bff depends on @gatehouse/token-manager, which is not on a registry yet: use the tarball.
    overrides: { '@gatehouse/token-manager': spec('@gatehouse/token-manager') },
  };
  await mkdir(join(app, 'src', 'readme'), { recursive: true });
  await writeFile(join(app, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  await cp(join(root, 'scripts/smoke/app/tsconfig.json'), join(app, 'tsconfig.json'));
  await cp(join(root, 'scripts/smoke/app/src/server.ts'), join(app, 'src', 'server.ts'));
  for (const dir of PUBLIC_PACKAGES) {
    const readme = await readFile(join(root, 'packages', dir, 'README.md'), 'utf8');
    const examples = extractReadmeExamples(readme);
    if (examples.length === 0) fail(`packages/${dir}/README.md has no TypeScript example`);
    for (const [i, example] of examples.entries()) {
      await writeFile(join(app, 'src', 'readme', `${dir}-${i + 1}.ts`), example);
    }
    console.log(`packages/${dir}/README.md: ${examples.length} TypeScript examples to type-check`);
  }
}

async function waitForHealth(url: string, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) fail(`the scratch app exited with ${child.exitCode}`);
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  fail(`the scratch app did not answer ${url} within 30 s`);
}

async function expectJson(browser: TestBrowser, url: string, expected: Record<string, unknown>) {
  const response = await browser.fetch(url, { headers: { 'X-CSRF': '1' } });
  const body = (await response.json()) as Record<string, unknown>;
  if (response.status !== 200) fail(`${url} answered ${response.status} ${JSON.stringify(body)}`);
  for (const [key, value] of Object.entries(expected)) {
    if (body[key] !== value) fail(`${url}: expected ${key}=${String(value)}, got ${JSON.stringify(body)}`);
  }
  console.log(`${new URL(url).pathname}: 200 ${JSON.stringify(body)}`);
}

async function signInThroughScratchApp(app: string): Promise<void> {
  const port = await getFreePort();
  const apiPort = await getFreePort();
  const base = `http://localhost:${port}`;
  const idp = await startIdp({ bffBaseUrl: base });
  const redisPrefix = uniqueRedisPrefix('smoke');
  const child = spawn('node', ['dist/server.js'], {
    cwd: app,
    stdio: ['ignore', 'inherit', 'inherit'],
    env: {
      ...process.env,
      ISSUER: idp.issuer,
      PORT: String(port),
      API_PORT: String(apiPort),
      BFF_CLIENT_SECRET: 'bff-secret',
      SESSION_SECRET: 'smoke-test-session-secret-of-at-least-32-chars',
      REDIS_URL: redisUrl,
      REDIS_PREFIX: redisPrefix,
    },
  });
  try {
    await waitForHealth(`${base}/health`, child);
    const browser = new TestBrowser();
    await browser.login(`${base}/bff/login?returnUrl=/`, { username: 'alice', password: 'alice' });
    const user = await browser.fetch(`${base}/bff/user`, { headers: { 'X-CSRF': '1' } });
    if (user.status !== 200) fail(`/bff/user after sign-in answered ${user.status}`);
    const claims = (await user.json()) as Array<{ type: string; value: unknown }>;
    if (!claims.some((c) => c.type === 'sub' && c.value === 'alice')) fail('/bff/user has no sub alice');
    console.log(`/bff/user: 200, ${claims.length} claims, sub alice`);
    await expectJson(browser, `${base}/api/me`, { sub: 'alice' });
    await expectJson(browser, `${base}/api/reports`, { client: 'bff' });
    await expectJson(browser, `${base}/local/whoami`, { sub: 'alice', hasAccessToken: true });
    const logoutUrl = claims.find((c) => c.type === 'bff:logout_url')?.value;
    if (typeof logoutUrl !== 'string') fail('/bff/user has no bff:logout_url');
    await browser.follow(new URL(logoutUrl, base));
    const after = await browser.fetch(`${base}/bff/user`, { headers: { 'X-CSRF': '1' } });
    if (after.status !== 401) fail(`/bff/user after sign-out answered ${after.status}, expected 401`);
    console.log('signed out: /bff/user 401');
  } finally {
    child.kill('SIGTERM');
    await idp.close();
    const redis = await connectTestRedis();
    await deleteRedisPrefix(redis, redisPrefix);
    await redis.close();
  }
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'gatehouse-smoke-'));
  const tarballDir = join(work, 'tarballs');
  const app = join(work, 'app');
  await mkdir(tarballDir);
  await mkdir(app);
  try {
    step('pack the public packages (pnpm pack runs prepack: a fresh build)');
    const tarballs = await packAll(tarballDir);
    step('inspect the tarballs');
    for (const tarball of tarballs) inspectTarball(tarball);
    step('publint --strict');
    for (const { name, file } of tarballs) {
      const output = run('npx', ['publint', 'run', file, '--strict'], root);
      if (/suggestion/i.test(output)) fail(`${name}: publint has suggestions (see above)`);
    }
    step('arethetypeswrong --profile esm-only');
    for (const { file } of tarballs) run('npx', ['attw', file, '--profile', 'esm-only', '--no-emoji'], root);
    step(`install the tarballs into a scratch app outside the workspace (${app})`);
    await writeScratchApp(app, tarballs);
    const install = run('npm', ['install', '--no-audit', '--no-fund', '--loglevel=warn'], app);
    if (/npm warn/i.test(install)) fail('npm install printed warnings (see above)');
    step('type-check the scratch app and the README examples (strict, NodeNext, skipLibCheck off)');
    run(join(app, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.json'], app);
    step('sign in through the scratch app against the sample IdP');
    await signInThroughScratchApp(app);
    console.log('\n\u2714 smoke: the packed packages install, type-check and sign in');
  } finally {
    if (process.env.KEEP_SMOKE) console.log(`kept ${work}`);
    else await rm(work, { recursive: true, force: true });
  }
}

await main();
