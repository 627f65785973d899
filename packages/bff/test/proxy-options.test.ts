// Remote-API options are validated once at start-up (house style: a TypeError that says the fix), and
// the route table matches raw request targets conservatively (SECURITY P1). Pure unit tests.
import { describe, expect, it } from 'vitest';
import { resolveBackchannelOptions } from '../src/lib/backchannel/options.js';
import { type RemoteApiOptions, resolveRemoteApis } from '../src/lib/proxy/options.js';
import { isSafeRest, RouteTable } from '../src/lib/proxy/path.js';

const api = (over: Partial<RemoteApiOptions> = {}): RemoteApiOptions => ({
  prefix: '/api/todos',
  upstream: 'http://127.0.0.1:4001/api/todos',
  ...over,
});

describe('resolveRemoteApis', () => {
  it('applies the defaults and freezes the result', () => {
    const [route] = resolveRemoteApis([api()]);
    expect(route).toEqual({
      prefix: '/api/todos',
      upstreamOrigin: 'http://127.0.0.1:4001',
      upstreamBasePath: '/api/todos',
      token: 'user',
      csrf: true,
      timeout: 30,
      bodyTimeout: 300,
      methods: undefined,
      allowSimpleContentTypes: [],
      resource: undefined,
      scope: undefined,
      websocket: true,
      forwardHeaders: undefined,
      xForwarded: false,
      maxBodySize: 10 * 1024 * 1024,
      maxHeaderCount: 100,
      maxHeaderBytes: 16_384,
      rateLimit: { burst: 100, perSecond: 20 },
    });
    expect(Object.isFrozen(route)).toBe(true);
    expect(
      resolveRemoteApis([api({ prefix: '/api/todos/', upstream: 'https://api.example/' })])[0],
    ).toMatchObject({
      prefix: '/api/todos',
      upstreamOrigin: 'https://api.example',
      upstreamBasePath: '',
    });
  });

  const bad: Array<[string, unknown, RegExp]> = [
    ['not an array', { prefix: '/x' }, /array/],
    ['relative prefix', [api({ prefix: 'api' })], /prefix must be a local path/],
    ['protocol-relative prefix', [api({ prefix: '//evil' })], /prefix must be a local path/],
    ['root prefix', [api({ prefix: '/' })], /every path/],
    ['dot segment prefix', [api({ prefix: '/api/../x' })], /plain path segments/],
    ['encoded prefix', [api({ prefix: '/api/%2e' })], /plain path segments/],
    ['duplicate prefix', [api(), api()], /declared twice/],
    ['bad upstream', [api({ upstream: 'not a url' })], /absolute http\(s\) URL/],
    ['ftp upstream', [api({ upstream: 'ftp://x/y' })], /http: or https:/],
    ['upstream with credentials', [api({ upstream: 'http://u:p@x/y' })], /credentials/],
    ['upstream with query', [api({ upstream: 'http://x/y?a=1' })], /query/],
    ['unknown token type', [api({ token: 'bearer' as never })], /token must be one of/],
    ['timeout in ms by mistake', [api({ timeout: 30_000 })], /seconds/],
    ['zero timeout', [api({ timeout: 0 })], /seconds/],
    ['P9: body timeout in ms by mistake', [api({ bodyTimeout: 300_000 })], /bodyTimeout is in seconds/],
    ['P9: zero body timeout', [api({ bodyTimeout: 0 })], /or false for no limit/],
    ['P9: body timeout true', [api({ bodyTimeout: true as never })], /bodyTimeout is in seconds/],
    ['csrf as a string', [api({ csrf: 'no' as never })], /csrf must be true or false/],
    ['empty methods', [api({ methods: [] })], /methods/],
    [
      'non-simple type in the allowlist',
      [api({ allowSimpleContentTypes: ['application/json'] })],
      /may only list/,
    ],
    ['typo in an option', [{ ...api(), tokn: 'user' }], /tokn is not an option/],
    ['P9: body limit in megabytes by mistake', [api({ maxBodySize: 1.5 })], /in bytes/],
    ['P9: negative body limit', [api({ maxBodySize: -1 })], /in bytes/],
    ['P9: header count too small', [api({ maxHeaderCount: 2 })], /maxHeaderCount/],
    ['P9: header bytes too small', [api({ maxHeaderBytes: 100 })], /maxHeaderBytes/],
    ['P7: rate limit true', [api({ rateLimit: true as never })], /rateLimit must be false or/],
    ['P7: rate limit without burst', [api({ rateLimit: { perSecond: 1 } as never })], /burst/],
    ['P7: zero refill', [api({ rateLimit: { burst: 5, perSecond: 0 } })], /perSecond/],
    ['P7: typo in rate limit', [api({ rateLimit: { burst: 5, perSec: 1 } as never })], /perSec is not/],
  ];

  it('P7/P9: rateLimit false turns the bucket off, bodyTimeout false the body limit; limits are kept as given', () => {
    const [route] = resolveRemoteApis([
      api({ rateLimit: false, maxBodySize: 0, maxHeaderCount: 20, maxHeaderBytes: 2048 }),
    ]);
    expect(route).toMatchObject({
      rateLimit: undefined,
      maxBodySize: 0,
      maxHeaderCount: 20,
      maxHeaderBytes: 2048,
    });
    expect(resolveRemoteApis([api({ bodyTimeout: false })])[0]?.bodyTimeout).toBe(false);
    expect(resolveRemoteApis([api({ bodyTimeout: 0.5 })])[0]?.bodyTimeout).toBe(0.5);
    expect(resolveRemoteApis([api({ rateLimit: { burst: 3, perSecond: 0.5 } })])[0]?.rateLimit).toEqual({
      burst: 3,
      perSecond: 0.5,
    });
  });
  for (const [name, input, message] of bad) {
    it(`rejects ${name} with a TypeError that says the fix`, () => {
      expect(() => resolveRemoteApis(input as RemoteApiOptions[])).toThrow(TypeError);
      expect(() => resolveRemoteApis(input as RemoteApiOptions[])).toThrow(message);
    });
  }
});

describe('resolveBackchannelOptions', () => {
  it('defaults: typ optional, 600 s max lifetime, 30 s skew', () => {
    expect(resolveBackchannelOptions(undefined)).toEqual({
      requireLogoutTyp: false,
      maxTokenLifetime: 600,
      clockTolerance: 30,
    });
  });
  it('rejects typos and durations in milliseconds', () => {
    expect(() => resolveBackchannelOptions({ requireTyp: true } as never)).toThrow(
      /requireTyp is not an option/,
    );
    expect(() => resolveBackchannelOptions({ maxTokenLifetime: 600_000 })).toThrow(/seconds/);
  });
});

describe('P1 RouteTable', () => {
  const table = new RouteTable(
    resolveRemoteApis([
      api({ prefix: '/api', upstream: 'http://up/base' }),
      api({ prefix: '/api/todos', upstream: 'http://up/todos' }),
      api({ prefix: '/root', upstream: 'http://up' }),
    ]).map((resolved) => ({ api: resolved })),
  );
  const upstreamPath = (target: string) => {
    const m = table.match(target);
    return m.kind === 'match' ? m.upstreamPath : m.kind;
  };

  it('maps whole-segment prefixes, longest first, keeping the rest and the query as sent', () => {
    expect(upstreamPath('/api/todos')).toBe('/todos');
    expect(upstreamPath('/api/todos/')).toBe('/todos/');
    expect(upstreamPath('/api/todos/1?x=%2F..&y')).toBe('/todos/1?x=%2F..&y');
    expect(upstreamPath('/api/other')).toBe('/base/other');
    expect(upstreamPath('/api?q=1')).toBe('/base?q=1');
    expect(upstreamPath('/root')).toBe('/');
    expect(upstreamPath('/root/a%20b/%C3%A9')).toBe('/a%20b/%C3%A9');
  });

  it('does not claim look-alikes', () => {
    for (const target of ['/apix', '/api-todos', '/API/todos', '/ap', '/', '*', 'http://x/other']) {
      expect(upstreamPath(target), target).toBe('none');
    }
  });

  it('refuses ambiguous paths under a prefix', () => {
    for (const target of [
      '/api/..',
      '/api/../x',
      '/api/./x',
      '/api/%2e%2e',
      '/api/%2E',
      '/api/a/%2e%2E/b',
      '/api/a%2fb',
      '/api/a%5Cb',
      '/api/a\\b',
      '/api//x',
      '/api/a//b',
      '/api/%',
      '/api/%e9',
      '/api/a%00b',
      '/api/a%0ab',
      '/api/%252e%252e',
      '/api/%252f',
      '/api/a b',
      '/api/é',
      'http://evil.example/api/x',
      'https://evil.example/api/todos/1',
    ]) {
      expect(upstreamPath(target), target).toBe('invalid');
    }
  });

  it('isSafeRest accepts ordinary paths', () => {
    for (const rest of ['', '/', '/a', '/a/b/', '/a.b/..c/c..', '/%41', "/a-b_c~d!$&'()*+,;=:@"]) {
      expect(isSafeRest(rest), rest).toBe(true);
    }
  });
});
