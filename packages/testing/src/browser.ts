// A browser-like HTTP client for tests: a cookie jar with browser rules (Path, Secure, SameSite,
// expiry, __Host- prefixes), manual redirects with a hop log, form parsing and submission, and the
// sample IdP's login dance. Built on tough-cookie and the global fetch (`redirect: 'manual'`).
import { isIP } from 'node:net';
import { Cookie, CookieJar, getPublicSuffix } from 'tough-cookie';

/** How the request relates to the page that makes it, for SameSite and `Sec-Fetch-Site`. */
export type RequestSite = 'same-origin' | 'same-site' | 'cross-site';

/** `fetch` init plus browser-context options. */
export interface BrowserRequestInit extends Omit<RequestInit, 'body' | 'redirect'> {
  body?: RequestInit['body'];
  /** Form fields: sent as `application/x-www-form-urlencoded`; the method defaults to POST. */
  form?: Record<string, string> | URLSearchParams;
  /** A JSON body (sets `content-type: application/json`); the method defaults to POST. */
  json?: unknown;
  /**
   * URL of the page that makes the request. Decides the SameSite context and `Sec-Fetch-Site`
   * like a browser. Omitted (and no `site`): a request typed into the address bar, which sends
   * every cookie (including SameSite=Strict).
   */
  initiator?: string | URL;
  /** Forces the relation to the initiating page (simulates e.g. a cross-site form post). */
  site?: RequestSite;
  /**
   * A top-level navigation (link, form, redirect). Cross-site navigations with GET still carry
   * SameSite=Lax cookies; cross-site subresource/fetch requests carry only SameSite=None ones.
   * Default: false for {@link TestBrowser.fetch}, true for {@link TestBrowser.follow}. Pass
   * `false` to `follow` to load a URL in an iframe (e.g. silent login): it stays non-top-level
   * through its redirects.
   */
  navigation?: boolean;
}

/** One response seen while following redirects. */
export interface Hop {
  method: string;
  url: string;
  status: number;
  /** Absolute `Location` (resolved against `url`), when present. */
  location: string | undefined;
  /** Raw `Set-Cookie` headers of this response. */
  setCookie: string[];
  /** Cookies this response tried to set that the jar refused (with the reason), like a browser would. */
  rejectedCookies: Array<{ cookie: string; reason: string }>;
}

/** The end of a redirect chain. */
export interface FollowResult {
  /** The final response (its body is already read into `text`; `response.text()` still works). */
  response: Response;
  status: number;
  /** URL of the final response. */
  url: string;
  /** Body of the final response. */
  text: string;
  /** Every response on the way, first to last (the final one included). */
  hops: Hop[];
}

export interface FollowOptions extends BrowserRequestInit {
  /** Maximum number of responses to follow (redirects + auto-submitted forms). Default 20. */
  maxHops?: number;
  /**
   * Submit self-submitting forms (oidc-provider's form_post pages, the IdP's sign-out page) like a
   * browser running their script. Default true.
   */
  autoSubmit?: boolean;
}

/** A parsed HTML form. */
export interface ParsedForm {
  /** Absolute action URL. */
  action: string;
  method: 'GET' | 'POST';
  /** `name` → `value` of every input/select/textarea with a name (last one wins). */
  fields: Record<string, string>;
  /** True for forms that submit themselves (`data-autosubmit`, or `document.forms[0].submit()`). */
  autoSubmit: boolean;
  id: string | undefined;
}

export interface Credentials {
  username: string;
  password: string;
}

export interface TestBrowserOptions {
  /** Treat http://localhost and 127.0.0.1 as secure contexts so `Secure`/`__Host-` cookies work. Default true. */
  allowSecureOnLocal?: boolean;
  /** The fetch to use. Default: the global fetch. */
  fetch?: typeof fetch;
  /** Headers sent with every request (e.g. a user agent). */
  headers?: Record<string, string>;
  /**
   * Chromium rules: a cookie without a valid SameSite attribute is treated as Lax, and
   * `SameSite=None` without `Secure` is refused. Default true (the e2e tests drive Chromium).
   */
  chromiumSameSite?: boolean;
  /**
   * Send and store cookies in third-party contexts (a cross-site iframe or fetch). Default false:
   * the Chromium the e2e tests use (156) blocks them, as Safari and Firefox (partitioning) do, so
   * e.g. a cross-site silent-login iframe reaches the IdP without its session cookie.
   */
  thirdPartyCookies?: boolean;
}

const ENTITIES: Record<string, string> = {
  amp: '&',
  lt: '<',
  gt: '>',
  quot: '"',
  apos: "'",
  '#39': "'",
  nbsp: '\u00a0',
};

function decodeEntities(value: string): string {
  return value.replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (whole, name: string) => {
    if (name[0] === '#') {
      const code =
        name[1] === 'x' || name[1] === 'X' ? Number.parseInt(name.slice(2), 16) : Number(name.slice(1));
      return Number.isFinite(code) ? String.fromCodePoint(code) : whole;
    }
    return ENTITIES[name.toLowerCase()] ?? whole;
  });
}

function attributes(tag: string): Record<string, string> {
  const out: Record<string, string> = {};
  const re = /([^\s"'<>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g;
  // Skip the tag name itself.
  const body = tag.replace(/^<\s*[a-z0-9]+/i, '').replace(/\/?>$/, '');
  for (const m of body.matchAll(re)) {
    const name = m[1]!.toLowerCase();
    if (!(name in out)) out[name] = decodeEntities(m[2] ?? m[3] ?? m[4] ?? '');
  }
  return out;
}

/**
 * Parses the forms of an HTML page (a small, forgiving parser for server-rendered test pages:
 * inputs, selects with a selected option, textareas; hidden and visible fields alike).
 */
export function parseForms(html: string, pageUrl: string | URL): ParsedForm[] {
  const pageScriptSubmits = /document\.forms\[0\]\.submit\(\)/.test(html);
  const forms: ParsedForm[] = [];
  const formRe = /<form\b[^>]*>([\s\S]*?)<\/form>/gi;
  let index = 0;
  for (const match of html.matchAll(formRe)) {
    const openTag = /^<form\b[^>]*>/i.exec(match[0])![0];
    const attrs = attributes(openTag);
    const inner = match[1] ?? '';
    const fields: Record<string, string> = {};
    for (const input of inner.matchAll(/<input\b[^>]*>/gi)) {
      const a = attributes(input[0]);
      if (!a.name) continue;
      const type = (a.type ?? 'text').toLowerCase();
      if ((type === 'checkbox' || type === 'radio') && !('checked' in a)) continue;
      if (type === 'submit' || type === 'button' || type === 'image' || type === 'reset') continue;
      fields[a.name] = a.value ?? (type === 'checkbox' ? 'on' : '');
    }
    for (const ta of inner.matchAll(/<textarea\b([^>]*)>([\s\S]*?)<\/textarea>/gi)) {
      const a = attributes(`<textarea ${ta[1]}>`);
      if (a.name) fields[a.name] = decodeEntities(ta[2] ?? '');
    }
    for (const sel of inner.matchAll(/<select\b([^>]*)>([\s\S]*?)<\/select>/gi)) {
      const a = attributes(`<select ${sel[1]}>`);
      if (!a.name) continue;
      const options = [
        ...(sel[2] ?? '').matchAll(/<option\b([^>]*)>([\s\S]*?)(?:<\/option>|(?=<option)|$)/gi),
      ];
      const chosen = options.find((o) => /\bselected\b/i.test(o[1] ?? '')) ?? options[0];
      if (chosen) {
        const oa = attributes(`<option ${chosen[1]}>`);
        fields[a.name] = oa.value ?? decodeEntities((chosen[2] ?? '').trim());
      }
    }
    const method = (attrs.method ?? 'GET').toUpperCase() === 'POST' ? 'POST' : 'GET';
    forms.push({
      action: new URL(attrs.action || String(pageUrl), pageUrl).href,
      method,
      fields,
      autoSubmit: 'data-autosubmit' in attrs || (pageScriptSubmits && index === 0),
      id: attrs.id,
    });
    index += 1;
  }
  return forms;
}

/** The "site" of a URL for SameSite: scheme + registrable domain (the host itself for IPs/localhost). */
export function siteOf(url: URL): string {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const domain = isIP(host) || !host.includes('.') ? host : (getPublicSuffix(host) ?? host);
  return `${url.protocol}//${domain}`;
}

function relation(from: URL, to: URL): RequestSite {
  if (from.origin === to.origin) return 'same-origin';
  return siteOf(from) === siteOf(to) ? 'same-site' : 'cross-site';
}

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
