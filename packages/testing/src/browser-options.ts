// The request options, redirect-chain results and settings of TestBrowser (browser.ts).
import type { RequestSite } from './site.js';

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
   * Default: false for `TestBrowser.fetch`, true for `TestBrowser.follow`. Pass
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
