// Route matching on the raw request target (SECURITY P1). The proxy compares the target exactly as the
// browser sent it with the declared prefixes, then checks that the rest of the path cannot mean anything
// else to the upstream: no dot segments (plain or percent-encoded), no encoded "/" or "\", no "\" at
// all, no empty segments, no control characters, valid percent-encoding. Anything ambiguous is refused
// (400) rather than "fixed", so the proxy and the upstream can never disagree about which path is meant.
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
      if (!target.startsWith(prefix)) continue;
      const next = target.charCodeAt(prefix.length);
      // Whole segments only: `/api/todosX` is not under `/api/todos`.
      if (!(Number.isNaN(next) || next === 47 /* / */ || next === 63) /* ? */) continue;
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

/** True when the part after the prefix (without the query) is a plain, unambiguous path. */
export function isSafeRest(rest: string): boolean {
  if (rest === '') return true;
  // rest starts with "/" (guaranteed by the segment check in match).
  let segmentStart = 1;
  for (let i = 1; i <= rest.length; i++) {
    const code = i < rest.length ? rest.charCodeAt(i) : 47;
    if (code === 47 /* / */) {
      const segment = rest.slice(segmentStart, i);
      // An empty segment ("//") is only fine as a trailing slash.
      if (segment === '' && i !== rest.length) return false;
      if (!isSafeSegment(segment)) return false;
      segmentStart = i + 1;
    } else if (code <= 0x20 || code === 0x7f || code === 92 /* \ */ || code === 35 /* # */ || code > 0x7e) {
      return false;
    }
  }
  return true;
}

function isSafeSegment(segment: string): boolean {
  if (segment === '.' || segment === '..') return false;
  if (!segment.includes('%')) return true;
  let decoded: string;
  try {
    decoded = decodeURIComponent(segment);
  } catch {
    return false;
  }
  if (isDangerousDecoded(decoded)) return false;
  // Double encoding (`%252e%252e`): an upstream that decodes twice would see dot segments.
  if (decoded.includes('%')) {
    try {
      return !isDangerousDecoded(decodeURIComponent(decoded));
    } catch {
      return true;
    }
  }
  return true;
}

function isDangerousDecoded(decoded: string): boolean {
  if (decoded === '.' || decoded === '..') return true;
  // Encoded separators or control characters: the upstream might decode them into path structure.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what we reject
  return /[/\\\u0000-\u001f\u007f]/.test(decoded);
}
