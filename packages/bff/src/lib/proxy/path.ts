// Route matching on the raw request target (SECURITY P1, P1a). The proxy compares the target exactly as
// the browser sent it with the declared prefixes, then checks that the rest of the path cannot mean
// anything else to the upstream: no dot segments (plain, percent-encoded, double-encoded, or hidden
// behind path parameters like "..;" that Tomcat, Jetty and Spring strip), no encoded "/", "\" or ";",
// no "\" at all, no empty segments, no control or non-ASCII characters, valid UTF-8 percent-encoding.
// Anything ambiguous is refused (400) rather than "fixed", so the proxy and the upstream can never
// disagree about which path is meant. test/support-paths/ holds model resolvers of those servers that
// the property tests check this against.
import type { ResolvedRemoteApi } from './options.js';

/** Outcome of matching one request target against the route table. */
export type PathMatch<R> =
  /** Not under any declared prefix: the proxy does not handle it. */
  | { kind: 'none' }
  /** Under a declared prefix but unsafe or ambiguous: answer 400, call nothing. */
  | { kind: 'invalid'; route: R }
  /** Proxy to `upstreamPath` (base path + rest + query, as sent). */
  | { kind: 'match'; route: R; upstreamPath: string };

const NONE = Object.freeze({ kind: 'none' as const });

/** A route table compiled once: longest prefix first, so `/api/todos` wins over `/api`. */
export class RouteTable<R extends { readonly api: ResolvedRemoteApi }> {
  readonly #routes: readonly R[];

  constructor(routes: readonly R[]) {
    this.#routes = [...routes].sort((a, b) => b.api.prefix.length - a.api.prefix.length);
  }

  /** Matches a raw request target (`req.originalUrl` / `req.url`). */
  match(target: string): PathMatch<R> {
    if (target.charCodeAt(0) !== 47 /* / */) return this.#matchAbsoluteForm(target);
    for (const route of this.#routes) {
      const prefix = route.api.prefix;
      if (!isUnderPrefix(target, prefix)) continue;
      const queryAt = target.indexOf('?', prefix.length);
      const rest = queryAt === -1 ? target.slice(prefix.length) : target.slice(prefix.length, queryAt);
      if (!isSafeRest(rest)) return { kind: 'invalid', route };
      const query = queryAt === -1 ? '' : target.slice(queryAt);
      const path = route.api.upstreamBasePath + rest;
      return { kind: 'match', route, upstreamPath: (path === '' ? '/' : path) + query };
    }
    return NONE;
  }

  // An absolute-form target (`GET http://evil.example/api/x`) is legal HTTP, but a BFF is an origin
  // server for the browser: when its path falls under a proxied prefix, refuse it instead of guessing.
  #matchAbsoluteForm(target: string): PathMatch<R> {
    let pathname: string;
    try {
      pathname = new URL(target).pathname;
    } catch {
      return NONE;
    }
    const inner = this.match(pathname.startsWith('/') ? pathname : `/${pathname}`);
    return inner.kind === 'none' ? NONE : { kind: 'invalid', route: inner.route };
  }
}

/**
 * True when the raw target is `prefix` itself or continues it with `/` or `?`: whole segments only, so
 * `/api/todosX` is not under `/api/todos`; case-sensitive and undecoded. The one prefix test the proxy
 * and the BFF's entry checks (routing.ts) share, so they always agree on what is a remote-API call.
 */
export function isUnderPrefix(target: string, prefix: string): boolean {
  if (!target.startsWith(prefix)) return false;
  const next = target.charCodeAt(prefix.length);
  return Number.isNaN(next) || next === 47 /* / */ || next === 63 /* ? */;
}

/** True when the part after the prefix (without the query) is a plain, unambiguous path. */
export function isSafeRest(rest: string): boolean {
  if (rest === '') return true;
  // rest starts with "/" (guaranteed by the segment check in match).
  let segmentStart = 1;
  for (let i = 1; i <= rest.length; i++) {
    const code = i < rest.length ? rest.charCodeAt(i) : 47;
    if (code === 47 /* / */) {
      const segment = rest.slice(segmentStart, i);
      if (segment === '') {
        // An empty segment ("//") is only fine as a trailing slash.
        if (i !== rest.length) return false;
      } else if (!isSafeSegment(segment)) return false;
      segmentStart = i + 1;
    } else if (code <= 0x20 || code === 0x7f || code === 92 /* \ */ || code === 35 /* # */ || code > 0x7e) {
      return false;
    }
  }
  return true;
}

function isSafeSegment(segment: string): boolean {
  // P1a: Tomcat, Jetty and Spring drop a segment's path parameters (from its first ";") before they
  // resolve dot segments, so "..;", "..;x" and ".;" are ".." and "." to them; an empty segment with
  // parameters (";x") is an empty segment, i.e. "//".
  if (isDotOrEmpty(withoutParameters(segment))) return false;
  if (!segment.includes('%')) return true;
  // Malformed escapes: servers disagree on what "%zz" or "%" means.
  if (/%(?![0-9A-Fa-f]{2})/.test(segment)) return false;
  // Encoded separators and control characters: a server that decodes before splitting (nginx, Spring's
  // UrlPathHelper, a static file handler) would see path structure where we see data.
  if (ENCODED_SEPARATOR.test(segment)) return false;
  let decoded: string;
  try {
    decoded = decodeURIComponent(segment);
  } catch {
    // Not UTF-8 (also overlong forms like %C0%AE for "."): refused rather than guessed at.
    return false;
  }
  // Encoded dots ("%2e%2e;", "%2E.;jsessionid=1"): literal ";" is the only ";" left after the check above.
  if (isDotOrEmpty(withoutParameters(decoded))) return false;
  // Compatibility forms ("．．", "／" from %EF%BC%8E…) become dots and separators under NFKC, which some
  // Java and .NET stacks apply to paths: refuse when it adds any character that structures a path.
  const compatible = decoded.normalize('NFKC');
  if (compatible !== decoded && structureOf(compatible) !== structureOf(decoded)) return false;
  if (!decoded.includes('%')) return true;
  // Double encoding ("%252e%252e", "%253B"): an upstream that decodes twice must not see structure either.
  if (ENCODED_SEPARATOR.test(decoded)) return false;
  let twice: string;
  try {
    twice = decodeURIComponent(decoded);
  } catch {
    return true; // a literal "%" in the data (e.g. "100%25"), not a second encoding
  }
  return !isDotOrEmpty(withoutParameters(twice));
}

/** `%2F`, `%5C`, `%3B` and encoded control characters (any case). */
const ENCODED_SEPARATOR = /%(?:2[fF]|5[cC]|3[bB]|[01][0-9A-Fa-f]|7[fF])/;

/** The segment up to its first `;` (the part Tomcat, Jetty and Spring resolve dot segments on). */
function withoutParameters(segment: string): string {
  const semi = segment.indexOf(';');
  return semi === -1 ? segment : segment.slice(0, semi);
}

function isDotOrEmpty(name: string): boolean {
  return name === '' || name === '.' || name === '..';
}

/** The characters that give a path structure, in order (to compare a string with its NFKC form). */
function structureOf(value: string): string {
  return value.replace(/[^./\\;%]/g, '');
}
