// P1a: the proxy's path checks against model resolvers of the servers behind it (Tomcat/Jetty/Spring,
// nginx, WHATWG URL, Express static files, double decoding, NFKC). Property-based: fast-check builds
// paths from dot segments, ";" parameters, encoded "/", "\", "%", ";", Unicode and repeated slashes, and
// nothing a model would place outside the route's upstream base (or split differently) may be forwarded.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { resolveRemoteApis } from '../src/lib/proxy/options.js';
import { isSafeRest, RouteTable } from '../src/lib/proxy/path.js';
import { isInside, RESOLVERS, segmentCount } from './support-paths/resolvers.js';

const routes = resolveRemoteApis([
  { prefix: '/api/todos', upstream: 'http://up.test/api/todos' },
  { prefix: '/api', upstream: 'http://up.test/base' },
  { prefix: '/deep', upstream: 'http://up.test/a/b/c' },
  { prefix: '/root', upstream: 'http://up.test' },
]);
const table = new RouteTable(routes.map((api) => ({ api })));

/** Pieces a segment is glued from: the traversal tricks each server family falls for, and plain data. */
const ATOMS = [
  // names
  'a',
  'admin',
  'x1',
  'WEB-INF',
  // dot segments, plain and encoded (any case, mixed, double)
  '.',
  '..',
  '%2e',
  '%2E',
  '.%2e',
  '%2e.',
  '%2E%2e',
  '%252e',
  '%252E%252e',
  // path parameters, literal and encoded
  ';',
  ';x',
  ';jsessionid=1',
  '%3b',
  '%3B',
  '%253B',
  // encoded separators and backslashes
  '%2f',
  '%2F',
  '%5c',
  '%5C',
  '%252f',
  '\\',
  // percent signs
  '%',
  '%25',
  '%zz',
  '%2',
  // unicode: raw, encoded, fullwidth dot and solidus (NFKC), overlong UTF-8 dot, RTL override
  'é',
  '%C3%A9',
  '%EF%BC%8E',
  '%EF%BC%8F',
  '%C0%AE',
  '%E2%80%AE',
  // control characters
  '%00',
  '%0a',
  '%09',
];

const segmentArb = fc
  .array(fc.constantFrom(...ATOMS), { minLength: 0, maxLength: 3 })
  .map((atoms) => atoms.join(''));
/** A path after the prefix: "/" + segments (empty ones make repeated slashes), maybe a trailing "/", maybe a query. */
const restArb = fc
  .tuple(
    fc.array(segmentArb, { minLength: 1, maxLength: 6 }),
    fc.boolean(),
    fc.constantFrom('', '?q=1', '?next=..%2F..%2Fadmin', '?a=;b'),
  )
  .map(([segments, trailing, query]) => `/${segments.join('/')}${trailing ? '/' : ''}${query}`);
const prefixArb = fc.constantFrom(...routes.map((r) => r.prefix));

const withoutQuery = (path: string) => {
  const q = path.indexOf('?');
  return q === -1 ? path : path.slice(0, q);
};
const baseOf = (prefix: string) => routes.find((r) => r.prefix === prefix)!.upstreamBasePath;

/** The models that would serve `upstreamPath` outside `base` or split it differently. */
function disagreeing(upstreamPath: string, base: string): string[] {
  const path = withoutQuery(upstreamPath);
  const out: string[] = [];
  for (const [name, resolve] of Object.entries(RESOLVERS)) {
    const resolved = resolve(path);
    if (resolved === null) continue; // the server refuses it: safe
    if (!isInside(resolved, base) || segmentCount(resolved) !== segmentCount(path)) out.push(name);
  }
  return out;
}

describe('P1a path parameters and encoded separators (model resolvers)', () => {
  it.each([
    '/api/todos/..;/..;/admin',
    '/api/todos/%2e%2e;/admin',
    '/api/todos/.;/x',
    '/api/todos/..;x/admin',
    '/api/todos/%2E.;jsessionid=1/admin',
    '/api/todos/x/..;',
    '/api/todos/;x/admin',
    '/api/todos/a%3B/..',
    '/api/todos/..%3Bx/admin',
    '/api/todos/..%253B/admin',
    '/api/todos/%EF%BC%8E%EF%BC%8E/admin',
    '/api/todos/a%EF%BC%8Fb',
    '/api/todos/%C0%AE%C0%AE/admin',
  ])('P1a: refuses %s (400, no upstream call)', (target) => {
    expect(table.match(target).kind).toBe('invalid');
  });

  it('P1a: keeps ordinary matrix parameters and encoded data that no model reads as structure', () => {
    for (const rest of ['/a;v=1/b', '/a;x', '/100%25', '/%C3%A9t%C3%A9', '/a%20b', '/%2e%2e%2e', '/..a;b']) {
      expect(isSafeRest(rest), rest).toBe(true);
      expect(disagreeing(`/api/todos${rest}`, '/api/todos'), rest).toEqual([]);
    }
  });

  it('P1a property: no forwarded path is resolved outside the route base, or split differently, by any model', () => {
    let escapes = 0;
    let forwarded = 0;
    fc.assert(
      fc.property(prefixArb, restArb, (prefix, rest) => {
        const base = baseOf(prefix);
        // What the models would do with the path if the BFF forwarded it unchecked.
        if (disagreeing(base + rest, base).length > 0) escapes += 1;
        const match = table.match(prefix + rest);
        if (match.kind !== 'match') return;
        forwarded += 1;
        expect(disagreeing(match.upstreamPath, match.route.api.upstreamBasePath)).toEqual([]);
      }),
      { numRuns: 20_000 },
    );
    // The generator must actually produce attacks and ordinary paths, or the property proves nothing.
    expect(escapes).toBeGreaterThan(2_000);
    expect(forwarded).toBeGreaterThan(500);
  });

  it('P1a property: paths built only from plain names and matrix parameters are forwarded as sent', () => {
    const plainSegment = fc
      .tuple(
        fc.constantFrom('a', 'x1', 'a.b', '..a', '%C3%A9', 'a%20b', '100%25'),
        fc.constantFrom('', ';v=1', ';jsessionid=abc'),
      )
      .map(([name, params]) => name + params);
    fc.assert(
      fc.property(prefixArb, fc.array(plainSegment, { minLength: 1, maxLength: 5 }), (prefix, segments) => {
        const rest = `/${segments.join('/')}`;
        const match = table.match(prefix + rest);
        expect(match.kind).toBe('match');
        if (match.kind === 'match') expect(match.upstreamPath).toBe(baseOf(prefix) + rest);
      }),
      { numRuns: 2_000 },
    );
  });
});
