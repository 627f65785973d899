// Test stack for the BFF core: the real sample IdP and the sample BFF host in-process on loopback,
// plus a log capture that every suite scans for secrets.
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
    lines.push(
      JSON.stringify({ level, msg, ...obj }, (_k, v) => (v instanceof Error ? { message: v.message } : v)),
    );
  };
  return { lines, debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') };
}

export interface Stack {
  idp: RunningIdp;
  bff: RunningBff;
  logger: ReturnType<typeof captureLogger>;
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
  const bff = await startBff({
    port,
    issuer: idp.issuer,
    sessionSecret: SESSION_SECRET,
    logger,
    ...options.bff,
    bff: { ...options.bff?.bff, ...options.bffOptions },
  });
  return {
    idp,
    bff,
    logger,
    async close() {
      await bff.close();
      await idp.close();
    },
  };
}

/** Logs `user` in through /bff/login and the IdP's login page; returns the browser and the hops. */
export async function signIn(stack: Stack, user = 'alice', returnUrl?: string) {
  const browser = new TestBrowser();
  const start = `${stack.bff.url}/bff/login${returnUrl ? `?returnUrl=${encodeURIComponent(returnUrl)}` : ''}`;
  const result = await browser.login(start, { username: user, password: user });
  return { browser, result };
}

/** GET /bff/user as the SPA would (same-origin fetch with X-CSRF). */
export async function getUser(browser: TestBrowser, stack: Stack, query = '') {
  return browser.fetch(`${stack.bff.url}/bff/user${query}`, {
    headers: { 'x-csrf': '1' },
    initiator: `${stack.bff.url}/`,
  });
}

/** The session cookie value in the browser, if any. */
export async function sessionCookie(browser: TestBrowser, stack: Stack) {
  return browser.cookie(`${stack.bff.url}/`, '__Host-bff');
}
