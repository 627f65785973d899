// Test stack for the BFF core: the real sample IdP and the sample BFF host in-process on loopback,
// a fetch tap between the BFF and the IdP (counts requests, records issued tokens, injects faults the
// real IdP cannot produce on demand), a movable clock and a log capture scanned for secrets.
import type { BffOptions, Logger } from '@gatehouse/bff';
import {
  getFreePort,
  type RunningBff,
  type RunningIdp,
  type StartBffOptions,
  startBff,
  startIdp,
  TestBrowser,
} from '@gatehouse/testing';

export const SESSION_SECRET = 'test-session-secret-0123456789-abcdefghijklmnop';

/** A logger that keeps every line (for the "no secret in any log line" checks). */
export function captureLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const log = (level: string) => (obj: object, msg?: string) => {
    lines.push(JSON.stringify({ level, msg, ...obj }));
  };
  return { lines, debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') };
}

type Intercept = (
  url: URL,
  init: RequestInit | undefined,
) => Promise<Response | undefined> | Response | undefined;

/** fetch between the BFF and the IdP: records, counts and (when told) replaces responses. */
export function createTap() {
  const tokens = new Set<string>();
  const calls: { path: string; grantType?: string | undefined }[] = [];
  /** Pushed authorization requests (PAR, L16): the pushed parameters by the `request_uri` the OP issued. */
  const pushed = new Map<string, URLSearchParams>();
  const tap = {
    tokens,
    calls,
    pushed,
    intercept: undefined as Intercept | undefined,
    count(path: string, grantType?: string) {
      return calls.filter((c) => c.path === path && (grantType === undefined || c.grantType === grantType))
        .length;
    },
    fetch: async (input: string | URL, init?: RequestInit): Promise<Response> => {
      const url = new URL(String(input));
      const body = init?.body;
      const grantType = body instanceof URLSearchParams ? (body.get('grant_type') ?? undefined) : undefined;
      calls.push({ path: url.pathname, grantType });
      const injected = await tap.intercept?.(url, init);
      const response = injected ?? (await fetch(input, init));
      if (response.status === 201 && body instanceof URLSearchParams) {
        const { request_uri: uri } = (await response.clone().json()) as { request_uri?: unknown };
        if (typeof uri === 'string') pushed.set(uri, new URLSearchParams(body));
      }
      if (url.pathname === '/token' && response.ok) {
        const json = (await response.clone().json()) as Record<string, unknown>;
        for (const k of ['access_token', 'refresh_token', 'id_token']) {
          if (typeof json[k] === 'string') tokens.add(json[k] as string);
        }
      }
      return response;
    },
  };
  return tap;
}

/** A clock the test can move forward. */
export function createClock() {
  let offset = 0;
  return {
    now: () => Date.now() + offset,
    advance(seconds: number) {
      offset += seconds * 1000;
    },
  };
}

export interface Stack {
  idp: RunningIdp;
  bff: RunningBff;
  logger: ReturnType<typeof captureLogger>;
  tap: ReturnType<typeof createTap>;
  clock: ReturnType<typeof createClock>;
  close(): Promise<void>;
}

export async function startStack(
  options: {
    idp?: Parameters<typeof startIdp>[0];
    bff?: Partial<StartBffOptions>;
    bffOptions?: Partial<BffOptions>;
  } = {},
): Promise<Stack> {
  const port = await getFreePort();
  const idp = await startIdp({ bffBaseUrl: `http://localhost:${port}`, ...options.idp });
  const logger = captureLogger();
  const tap = createTap();
  const clock = createClock();
  const bff = await startBff({
    port,
    issuer: idp.issuer,
    sessionSecret: SESSION_SECRET,
    logger,
    ...options.bff,
    // The sample host hands sign-in errors to its SPA (`errorPath: '/'`); these tests exercise the
    // library's default, the BFF's own error page, unless a test sets errorPath itself.
    bff: {
      errorPath: undefined,
      fetch: tap.fetch,
      clock: clock.now,
      ...options.bff?.bff,
      ...options.bffOptions,
    },
  });
  return {
    idp,
    bff,
    logger,
    tap,
    clock,
    async close() {
      await bff.close();
      await idp.close();
    },
  };
}

/**
 * The authorization request behind a redirect to the OP: its query, or (when the BFF pushed it, PAR)
 * the parameters pushed for the `request_uri` it carries.
 */
export function authorizationParams(stack: Pick<Stack, 'tap'>, location: string | URL): URLSearchParams {
  const query = new URL(location).searchParams;
  const uri = query.get('request_uri');
  if (uri === null) return query;
  const params = stack.tap.pushed.get(uri);
  if (!params) throw new Error('no pushed authorization request recorded for this request_uri');
  return params;
}

/** Logs `user` in through /bff/login and the IdP's login page; returns the browser and the hops. */
export async function signIn(stack: Pick<Stack, 'bff'>, user = 'alice', returnUrl?: string) {
  const browser = new TestBrowser();
  const start = `${stack.bff.url}/bff/login${returnUrl ? `?returnUrl=${encodeURIComponent(returnUrl)}` : ''}`;
  const result = await browser.login(start, { username: user, password: user });
  return { browser, result };
}

/**
 * Runs the login up to the IdP's redirect back to /bff/callback and stops there: returns the browser
 * (holding the transaction cookie) and the callback URL, not yet visited.
 */
export async function startLoginUntilCallback(stack: Pick<Stack, 'bff'>, user = 'alice', query = '') {
  let callbackUrl: string | undefined;
  const browser = new TestBrowser({
    fetch: async (input, init) => {
      const url = String(input instanceof Request ? input.url : input);
      if (url.startsWith(`${stack.bff.url}/bff/callback`) && callbackUrl === undefined) {
        callbackUrl = url;
        return new Response('intercepted', { status: 200, headers: { 'content-type': 'text/plain' } });
      }
      return fetch(input, init);
    },
  });
  await browser.login(`${stack.bff.url}/bff/login${query}`, { username: user, password: user });
  if (!callbackUrl) throw new Error('the login never reached /bff/callback');
  return { browser, callbackUrl: new URL(callbackUrl) };
}

/** GET /bff/user as the SPA would (same-origin fetch with X-CSRF). */
export async function getUser(browser: TestBrowser, stack: Pick<Stack, 'bff'>, query = '') {
  return browser.fetch(`${stack.bff.url}/bff/user${query}`, {
    headers: { 'x-csrf': '1' },
    initiator: `${stack.bff.url}/`,
  });
}

/** The session cookie value in the browser, if any. */
export async function sessionCookie(browser: TestBrowser, stack: Pick<Stack, 'bff'>) {
  return browser.cookie(`${stack.bff.url}/`, '__Host-bff');
}

/** Fails when any issued token or secret appears in `haystack` (S3). */
export function assertNoSecrets(haystack: string, secrets: Iterable<string>) {
  for (const secret of secrets) {
    if (secret.length >= 8 && haystack.includes(secret)) {
      throw new Error(`a token or secret leaked: …${secret.slice(-6)} found in captured output`);
    }
  }
}

/** A token response body as JSON. */
export function jsonResponse(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers },
  });
}
