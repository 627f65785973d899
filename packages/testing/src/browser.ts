// A browser-like HTTP client for tests: a cookie jar with browser rules (Path, Secure, SameSite,
// expiry, __Host- prefixes), manual redirects with a hop log, form submission, and the sample IdP's
// login dance. Built on tough-cookie and the global fetch (`redirect: 'manual'`). Its options and
// results are in browser-options.ts, the form parser in html-forms.ts, the site rules in site.ts.
import { Cookie, CookieJar } from 'tough-cookie';
import type {
  BrowserRequestInit,
  Credentials,
  FollowOptions,
  FollowResult,
  Hop,
  TestBrowserOptions,
} from './browser-options.js';
import { parseForms } from './html-forms.js';
import { type RequestSite, relation, siteOf } from './site.js';

export type {
  BrowserRequestInit,
  Credentials,
  FollowOptions,
  FollowResult,
  Hop,
  TestBrowserOptions,
} from './browser-options.js';
export { type ParsedForm, parseForms } from './html-forms.js';
export { type RequestSite, siteOf } from './site.js';

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/**
 * A browser for tests, one per simulated user. Keeps cookies across hosts with browser rules and
 * never follows a redirect on its own: use {@link TestBrowser.follow} to walk a chain and read the
 * hop log.
 *
 * @example
 * const browser = new TestBrowser();
 * const done = await browser.login(`${bff.url}/bff/login`, { username: 'alice', password: 'alice' });
 * expect(done.url).toBe(`${bff.url}/`);
 */
export class TestBrowser {
  /** The cookie jar (tough-cookie), for inspection beyond {@link TestBrowser.cookies}. */
  readonly jar: CookieJar;
  readonly #fetch: typeof fetch;
  readonly #headers: Record<string, string>;
  readonly #chromiumSameSite: boolean;
  readonly #thirdPartyCookies: boolean;

  constructor(options: TestBrowserOptions = {}) {
    this.jar = new CookieJar(undefined, {
      allowSecureOnLocal: options.allowSecureOnLocal ?? true,
      prefixSecurity: 'strict',
      rejectPublicSuffixes: false,
      looseMode: false,
    });
    this.#fetch = options.fetch ?? globalThis.fetch;
    this.#headers = { ...options.headers };
    this.#chromiumSameSite = options.chromiumSameSite ?? true;
    this.#thirdPartyCookies = options.thirdPartyCookies ?? false;
  }

  /**
   * One request with this browser's cookies; stores the cookies of the response. Never follows
   * redirects. The SameSite context comes from `init.site` / `init.initiator` / `init.navigation`.
   */
  async fetch(url: string | URL, init: BrowserRequestInit = {}): Promise<Response> {
    const { response } = await this.#request(new URL(url), init, []);
    return response;
  }

  /**
   * Requests `url` as a top-level navigation and follows redirects (and self-submitting forms)
   * until a non-redirect response, recording every hop.
   */
  async follow(url: string | URL, options: FollowOptions = {}): Promise<FollowResult> {
    const { maxHops = 20, autoSubmit = true, ...init } = options;
    const hops: Hop[] = [];
    const chain: URL[] = [];
    let target = new URL(url);
    let request: BrowserRequestInit = { navigation: true, ...init };
    // An iframe (navigation: false) stays a non-top-level load through its redirects.
    const navigation = request.navigation ?? true;
    for (;;) {
      if (hops.length >= maxHops) {
        throw new Error(
          `TestBrowser.follow: more than ${maxHops} hops (a redirect loop?): ${hops.map((h) => `${h.status} ${h.url}`).join(' → ')}`,
        );
      }
      const { response, hop } = await this.#request(target, request, chain);
      hops.push(hop);
      chain.push(target);
      const method = hop.method;
      if (REDIRECTS.has(response.status) && hop.location) {
        await response.body?.cancel();
        const keepMethod = response.status === 307 || response.status === 308;
        const next = new URL(hop.location);
        const headers = new Headers(request.headers);
        headers.delete('content-type');
        headers.delete('content-length');
        request = keepMethod
          ? { ...request, initiator: request.initiator, site: undefined }
          : {
              navigation,
              method: method === 'HEAD' ? 'HEAD' : 'GET',
              headers,
              initiator: request.initiator,
            };
        target = next;
        continue;
      }
      const text = await response.text();
      const rebuilt = new Response(response.status === 204 || response.status === 304 ? null : text, {
        status: response.status,
        statusText: response.statusText,
        headers: response.headers,
      });
      const isHtml = (response.headers.get('content-type') ?? '').includes('html');
      const form = autoSubmit && isHtml ? parseForms(text, target).find((f) => f.autoSubmit) : undefined;
      if (form) {
        request =
          form.method === 'POST'
            ? { navigation, method: 'POST', form: form.fields, initiator: target }
            : { navigation, method: 'GET', initiator: target };
        target = form.method === 'POST' ? new URL(form.action) : withQuery(form.action, form.fields);
        continue;
      }
      return { response: rebuilt, status: response.status, url: target.href, text, hops };
    }
  }

  /**
   * Fills in and submits the sample IdP's login form found on `page` (a {@link FollowResult}
   * ending on the login page), then follows the redirects. Returns where the chain ends.
   */
  async submitLogin(
    page: Pick<FollowResult, 'url' | 'text'>,
    credentials: Credentials,
    options: FollowOptions = {},
  ): Promise<FollowResult> {
    const login = parseForms(page.text, page.url).find((f) => 'password' in f.fields);
    if (!login) {
      throw new Error(
        `TestBrowser.submitLogin: no login form on ${page.url}; page starts: ${page.text.slice(0, 120)}`,
      );
    }
    const fields = { ...login.fields, username: credentials.username, password: credentials.password };
    return this.follow(login.action, { ...options, method: login.method, form: fields, initiator: page.url });
  }

  /**
   * The whole sign-in dance: follows `startUrl` (e.g. `${bff}/bff/login`) to the IdP's login
   * page, submits the credentials and follows the redirects back. When the IdP session already
   * exists (no login page on the way), returns where the first chain ended.
   */
  async login(
    startUrl: string | URL,
    credentials: Credentials,
    options: FollowOptions = {},
  ): Promise<FollowResult> {
    const first = await this.follow(startUrl, options);
    if (!isLoginPage(first)) return first;
    const done = await this.submitLogin(first, credentials, { maxHops: options.maxHops ?? 20 });
    return { ...done, hops: [...first.hops, ...done.hops] };
  }

  /** Cookies this browser would send to `url` (HttpOnly included, SameSite not applied). */
  async cookies(url: string | URL): Promise<Cookie[]> {
    return this.jar.getCookies(String(url));
  }

  /** The value of one cookie for `url`, or undefined. */
  async cookie(url: string | URL, name: string): Promise<string | undefined> {
    return (await this.cookies(url)).find((c) => c.key === name)?.value;
  }

  /** Plants a cookie (`Set-Cookie` syntax, or a tough-cookie `Cookie`) as if `url` had set it. */
  async setCookie(cookie: string | Cookie, url: string | URL): Promise<Cookie | undefined> {
    return this.jar.setCookie(cookie, String(url));
  }

  /** Forgets every cookie (a browser restart without persistent storage). */
  async clearCookies(): Promise<void> {
    await this.jar.removeAllCookies();
  }

  async #request(
    target: URL,
    init: BrowserRequestInit,
    chain: URL[],
  ): Promise<{ response: Response; hop: Hop }> {
    const { form, json, initiator, site, navigation = false, headers: initHeaders, body, ...rest } = init;
    const method = (rest.method ?? (form !== undefined || json !== undefined ? 'POST' : 'GET')).toUpperCase();
    const headers = new Headers(this.#headers);
    for (const [k, v] of new Headers(initHeaders)) headers.set(k, v);

    // Relation to the initiating page; a redirect chain that passed through another site makes a
    // navigation cross-site (browsers then withhold SameSite=Strict cookies).
    const from = initiator === undefined ? undefined : new URL(initiator);
    let rel: RequestSite | 'none' = site ?? (from ? relation(from, target) : 'none');
    if (!site && chain.some((previous) => relation(previous, target) === 'cross-site')) rel = 'cross-site';
    const safe = method === 'GET' || method === 'HEAD';
    const sameSiteContext = rel === 'cross-site' ? (navigation && safe ? 'lax' : 'none') : 'strict';

    // Third-party context: not a top-level navigation, and the embedding page is on another site.
    const thirdParty =
      !navigation && (site === 'cross-site' || (from !== undefined && siteOf(from) !== siteOf(target)));
    const cookiesAllowed = this.#thirdPartyCookies || !thirdParty;
    const cookieHeader = cookiesAllowed
      ? await this.jar.getCookieString(target.href, { sameSiteContext })
      : '';
    if (cookieHeader && !headers.has('cookie')) headers.set('cookie', cookieHeader);
    if (!headers.has('sec-fetch-site')) headers.set('sec-fetch-site', rel);
    if (!headers.has('sec-fetch-mode')) headers.set('sec-fetch-mode', navigation ? 'navigate' : 'cors');
    // Node's fetch overwrites Sec-Fetch-Mode with `cors`; Sec-Fetch-Dest and Accept survive, and say the
    // same as a browser's page load (a document wanting HTML) or script call (`empty`, any type).
    if (!headers.has('sec-fetch-dest')) headers.set('sec-fetch-dest', navigation ? 'document' : 'empty');
    if (navigation && !headers.has('accept'))
      headers.set('accept', 'text/html,application/xhtml+xml,*/*;q=0.8');
    if (!safe && !headers.has('origin')) {
      if (from) headers.set('origin', from.origin);
      else if (site === 'cross-site') headers.set('origin', 'https://attacker.example');
      else if (site) headers.set('origin', target.origin);
    }

    let requestBody = body;
    if (form !== undefined) {
      requestBody = form instanceof URLSearchParams ? form.toString() : new URLSearchParams(form).toString();
      if (!headers.has('content-type')) headers.set('content-type', 'application/x-www-form-urlencoded');
    } else if (json !== undefined) {
      requestBody = JSON.stringify(json);
      if (!headers.has('content-type')) headers.set('content-type', 'application/json');
    }

    const response = await this.#fetch(target, {
      ...rest,
      method,
      headers,
      body: safe ? undefined : requestBody,
      redirect: 'manual',
    });

    const setCookie = response.headers.getSetCookie();
    const rejectedCookies: Hop['rejectedCookies'] = [];
    for (const raw of setCookie) {
      if (!cookiesAllowed) {
        rejectedCookies.push({ cookie: cookieName(raw), reason: 'third-party cookies are blocked' });
        continue;
      }
      try {
        const parsed = Cookie.parse(raw);
        if (!parsed) throw new Error('unparsable Set-Cookie');
        if (this.#chromiumSameSite) {
          if (parsed.sameSite === 'none' && !parsed.secure) throw new Error('SameSite=None requires Secure');
          parsed.sameSite ??= 'lax';
        }
        const stored = await this.jar.setCookie(parsed, target.href, { sameSiteContext });
        if (!stored) rejectedCookies.push({ cookie: cookieName(raw), reason: 'not stored' });
      } catch (error) {
        rejectedCookies.push({ cookie: cookieName(raw), reason: (error as Error).message });
      }
    }
    const location = response.headers.get('location');
    return {
      response,
      hop: {
        method,
        url: target.href,
        status: response.status,
        location: location === null ? undefined : new URL(location, target).href,
        setCookie,
        rejectedCookies,
      },
    };
  }
}

function cookieName(raw: string): string {
  return raw.split('=')[0]?.trim() ?? '';
}

function withQuery(action: string, fields: Record<string, string>): URL {
  const url = new URL(action);
  for (const [k, v] of Object.entries(fields)) url.searchParams.set(k, v);
  return url;
}

/** True when a followed page is the sample IdP's login form. */
export function isLoginPage(page: Pick<FollowResult, 'text'>): boolean {
  return /<input[^>]*name="username"/.test(page.text) && /<input[^>]*name="password"/.test(page.text);
}
