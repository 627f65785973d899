// Token-secrecy bookkeeping: every token the IdP's token endpoint hands out (the real values, taken
// from the IdP's own responses) and everything the browser received or kept. The assertion is that
// none of the former appears in any of the latter.
import type { BrowserContext, Page, Response } from 'playwright-core';

// Browser globals used inside page.evaluate(): that code runs in Chromium, not in Node.
declare const document: { cookie: string; documentElement: { outerHTML: string } };
declare const localStorage: Record<string, string>;
declare const sessionStorage: Record<string, string>;

/** One thing the browser saw, with where it came from (for a readable failure). */
export interface Exhibit {
  where: string;
  text: string;
}

/** Collects the token values the IdP issued (filled by the suite's IdP server wrapper). */
export class IssuedTokens {
  readonly values = new Map<string, string>();

  /** Records the tokens of one token-endpoint JSON response. */
  addTokenResponse(body: string, grantType: string): void {
    let json: unknown;
    try {
      json = JSON.parse(body);
    } catch {
      return;
    }
    if (!json || typeof json !== 'object') return;
    for (const kind of ['access_token', 'refresh_token', 'id_token'] as const) {
      const value = (json as Record<string, unknown>)[kind];
      if (typeof value === 'string' && value.length >= 16) this.values.set(value, `${kind} (${grantType})`);
    }
  }

  count(kind?: 'access_token' | 'refresh_token' | 'id_token'): number {
    return [...this.values.values()].filter((label) => kind === undefined || label.startsWith(kind)).length;
  }
}

/** Records every response (headers and body) a browser context received, on every page and frame. */
export class BrowserRecorder {
  readonly exhibits: Exhibit[] = [];
  private readonly pending = new Set<Promise<void>>();

  /** Uncaught exceptions and CSP violations on any page (the SPA must run under `script-src 'self'`). */
  readonly pageProblems: string[] = [];

  attach(context: BrowserContext, label: string): void {
    context.on('page', (page) => {
      page.on('pageerror', (error) => this.pageProblems.push(`${label} @ ${page.url()}: ${error.message}`));
      page.on('console', (message) => {
        if (/content security policy/i.test(message.text())) {
          this.pageProblems.push(`${label} @ ${page.url()}: ${message.text()}`);
        }
      });
    });
    context.on('response', (response) => {
      const work = this.record(response, label).finally(() => this.pending.delete(work));
      this.pending.add(work);
    });
  }

  private async record(response: Response, label: string): Promise<void> {
    const where = `${label}: ${response.request().method()} ${response.url()} → ${response.status()}`;
    this.exhibits.push({ where: `${where} (url)`, text: response.url() });
    try {
      const headers = await response.allHeaders();
      this.exhibits.push({ where: `${where} (headers)`, text: JSON.stringify(headers) });
    } catch {
      // The page went away before the headers could be read; the body below will say so too.
    }
    try {
      const body = await response.body();
      this.exhibits.push({ where: `${where} (body)`, text: body.toString('utf8') });
    } catch {
      // Redirects and aborted navigations have no body to read.
    }
  }

  /** What the page keeps where script can read it: cookies, both storages, the DOM. */
  async snapshot(page: Page, label: string): Promise<void> {
    const state = await page.evaluate(() => ({
      cookie: document.cookie,
      local: JSON.stringify({ ...localStorage }),
      session: JSON.stringify({ ...sessionStorage }),
      dom: document.documentElement.outerHTML,
    }));
    const where = `${label} @ ${page.url()}`;
    this.exhibits.push({ where: `${where} (document.cookie)`, text: state.cookie });
    this.exhibits.push({ where: `${where} (localStorage)`, text: state.local });
    this.exhibits.push({ where: `${where} (sessionStorage)`, text: state.session });
    this.exhibits.push({ where: `${where} (DOM)`, text: state.dom });
  }

  /** Waits for response bodies still being read. */
  async settle(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }
}

/** A token the browser saw and where: `label` says which kind (e.g. `id_token (token endpoint)`). */
export interface Leak {
  token: string;
  label: string;
  exhibit: Exhibit;
}

/**
 * Every place an issued token shows up in what the browser saw. A token is also looked for in its
 * URL-encoded form (a redirect URL would carry it that way).
 */
export function findLeaks(tokens: IssuedTokens, exhibits: readonly Exhibit[]): Leak[] {
  const leaks: Leak[] = [];
  for (const [token, label] of tokens.values) {
    const needles = [...new Set([token, encodeURIComponent(token)])];
    for (const exhibit of exhibits) {
      if (needles.some((needle) => exhibit.text.includes(needle))) leaks.push({ token, label, exhibit });
    }
  }
  return leaks;
}
