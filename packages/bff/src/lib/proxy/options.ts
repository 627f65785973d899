// Remote-API options: validated once at start-up into a frozen table (house style: a bad value throws a
// TypeError that says the fix, so a misconfigured route never reaches a request).
import { isNeverForwarded } from './headers.js';
import {
  DEFAULT_BODY_TIMEOUT,
  DEFAULT_MAX_BODY_SIZE,
  DEFAULT_RATE_LIMIT,
  type RateLimitOptions,
  type RemoteApiOptions,
  type ResolvedRemoteApi,
  SIMPLE_CONTENT_TYPES,
  TOKEN_TYPES,
} from './remote-api.js';

export {
  DEFAULT_BODY_TIMEOUT,
  DEFAULT_MAX_BODY_SIZE,
  DEFAULT_RATE_LIMIT,
  type RateLimitOptions,
  type RemoteApiOptions,
  type RemoteApiTokenType,
  type ResolvedRemoteApi,
  SIMPLE_CONTENT_TYPES,
} from './remote-api.js';

const KNOWN_KEYS = new Set([
  'prefix',
  'upstream',
  'token',
  'csrf',
  'timeout',
  'bodyTimeout',
  'methods',
  'allowSimpleContentTypes',
  'resource',
  'scope',
  'websocket',
  'forwardHeaders',
  'xForwarded',
  'maxBodySize',
  'maxHeaderCount',
  'maxHeaderBytes',
  'rateLimit',
]);

/** Validates the `remoteApis` option once at start-up; throws TypeError with the fix. */
export function resolveRemoteApis(
  input: readonly RemoteApiOptions[] | undefined,
): readonly ResolvedRemoteApi[] {
  if (input === undefined) return Object.freeze([]);
  if (!Array.isArray(input)) {
    throw new TypeError('remoteApis must be an array of { prefix, upstream, token? } objects');
  }
  const seen = new Set<string>();
  const resolved = input.map((api: RemoteApiOptions, index) => {
    const where = `remoteApis[${index}]`;
    if (typeof api !== 'object' || api === null) throw new TypeError(`${where} must be an object`);
    for (const key of Object.keys(api)) {
      if (!KNOWN_KEYS.has(key)) {
        throw new TypeError(`${where}.${key} is not an option; use one of ${[...KNOWN_KEYS].join(', ')}`);
      }
    }
    const prefix = resolvePrefix(api.prefix, where);
    if (seen.has(prefix)) throw new TypeError(`${where}.prefix "${prefix}" is declared twice; keep one`);
    seen.add(prefix);
    const { origin, basePath } = resolveUpstream(api.upstream, where);
    const token = api.token ?? 'user';
    if (!TOKEN_TYPES.includes(token)) {
      throw new TypeError(`${where}.token must be one of ${TOKEN_TYPES.join(', ')} (got ${String(token)})`);
    }
    const csrf = api.csrf ?? true;
    if (typeof csrf !== 'boolean') throw new TypeError(`${where}.csrf must be true or false`);
    const timeout = api.timeout ?? 30;
    if (typeof timeout !== 'number' || !Number.isFinite(timeout) || timeout <= 0 || timeout > 3600) {
      throw new TypeError(`${where}.timeout is in seconds and must be a number in (0, 3600], e.g. 30`);
    }
    const bodyTimeout = api.bodyTimeout ?? DEFAULT_BODY_TIMEOUT;
    if (
      bodyTimeout !== false &&
      (typeof bodyTimeout !== 'number' ||
        !Number.isFinite(bodyTimeout) ||
        bodyTimeout <= 0 ||
        bodyTimeout > 3600)
    ) {
      throw new TypeError(
        `${where}.bodyTimeout is in seconds and must be a number in (0, 3600], e.g. 300, or false for no limit (streams)`,
      );
    }
    let methods: readonly string[] | undefined;
    if (api.methods !== undefined) {
      if (!Array.isArray(api.methods) || api.methods.length === 0 || api.methods.some((m) => !isToken(m))) {
        throw new TypeError(
          `${where}.methods must be a non-empty array of method names, e.g. ['GET', 'POST']`,
        );
      }
      methods = Object.freeze(api.methods.map((m) => m.toUpperCase()));
    }
    const simple = api.allowSimpleContentTypes ?? [];
    if (
      !Array.isArray(simple) ||
      simple.some((t) => !SIMPLE_CONTENT_TYPES.includes(String(t).toLowerCase()))
    ) {
      throw new TypeError(
        `${where}.allowSimpleContentTypes may only list ${SIMPLE_CONTENT_TYPES.join(', ')}`,
      );
    }
    for (const key of ['resource', 'scope'] as const) {
      const value = api[key];
      if (value !== undefined && (typeof value !== 'string' || value === '')) {
        throw new TypeError(`${where}.${key} must be a non-empty string when set`);
      }
    }
    const websocket = api.websocket ?? true;
    if (typeof websocket !== 'boolean') throw new TypeError(`${where}.websocket must be true or false`);
    const forwardHeaders = resolveForwardHeaders(api.forwardHeaders, where);
    const xForwarded = api.xForwarded ?? false;
    if (typeof xForwarded !== 'boolean') throw new TypeError(`${where}.xForwarded must be true or false`);
    const maxBodySize = api.maxBodySize ?? DEFAULT_MAX_BODY_SIZE;
    if (!Number.isSafeInteger(maxBodySize) || maxBodySize < 0) {
      throw new TypeError(
        `${where}.maxBodySize is in bytes and must be a whole number ≥ 0, e.g. 10485760 for 10 MiB`,
      );
    }
    const maxHeaderCount = api.maxHeaderCount ?? 100;
    if (!Number.isSafeInteger(maxHeaderCount) || maxHeaderCount < 10) {
      throw new TypeError(`${where}.maxHeaderCount must be a whole number ≥ 10, e.g. 100`);
    }
    const maxHeaderBytes = api.maxHeaderBytes ?? 16_384;
    if (!Number.isSafeInteger(maxHeaderBytes) || maxHeaderBytes < 1024) {
      throw new TypeError(
        `${where}.maxHeaderBytes is in bytes and must be a whole number ≥ 1024, e.g. 16384`,
      );
    }
    const rateLimit = resolveRateLimit(api.rateLimit, where);
    return Object.freeze({
      prefix,
      upstreamOrigin: origin,
      upstreamBasePath: basePath,
      token,
      csrf,
      timeout,
      bodyTimeout,
      methods,
      allowSimpleContentTypes: Object.freeze(simple.map((t) => t.toLowerCase())),
      resource: api.resource,
      scope: api.scope,
      websocket,
      forwardHeaders,
      xForwarded,
      maxBodySize,
      maxHeaderCount,
      maxHeaderBytes,
      rateLimit,
    });
  });
  return Object.freeze(resolved);
}

/** RFC 9110 §5.1 field names (tokens). */
const FIELD_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

function resolveForwardHeaders(list: unknown, where: string): readonly string[] | undefined {
  if (list === undefined) return undefined;
  if (!Array.isArray(list)) {
    throw new TypeError(
      `${where}.forwardHeaders must be an array of header names, e.g. ['accept', 'content-type']`,
    );
  }
  const names = new Set<string>();
  list.forEach((name: unknown, i) => {
    if (typeof name !== 'string' || !FIELD_NAME.test(name)) {
      throw new TypeError(`${where}.forwardHeaders[${i}] must be a header name like "content-type"`);
    }
    if (isNeverForwarded(name)) {
      throw new TypeError(
        `${where}.forwardHeaders[${i}] "${name}" is never forwarded (credentials, hop-by-hop or a header that steers the upstream); remove it${/^x-forwarded/i.test(name) ? " and set xForwarded: true to send the BFF's own" : ''}`,
      );
    }
    names.add(name.toLowerCase());
  });
  return Object.freeze([...names]);
}

function resolveRateLimit(
  input: RateLimitOptions | false | undefined,
  where: string,
): Readonly<RateLimitOptions> | undefined {
  if (input === false) return undefined;
  if (input === undefined) return DEFAULT_RATE_LIMIT;
  const fix = `${where}.rateLimit must be false or { burst, perSecond } with burst a whole number ≥ 1 and perSecond a number > 0, e.g. { burst: 100, perSecond: 20 }`;
  if (typeof input !== 'object' || input === null) throw new TypeError(fix);
  for (const key of Object.keys(input)) {
    if (key !== 'burst' && key !== 'perSecond')
      throw new TypeError(`${where}.rateLimit.${key} is not an option; ${fix}`);
  }
  const { burst, perSecond } = input;
  if (!Number.isSafeInteger(burst) || burst < 1) throw new TypeError(fix);
  if (typeof perSecond !== 'number' || !Number.isFinite(perSecond) || perSecond <= 0)
    throw new TypeError(fix);
  return Object.freeze({ burst, perSecond });
}

function resolvePrefix(prefix: unknown, where: string): string {
  if (typeof prefix !== 'string' || !prefix.startsWith('/') || prefix.startsWith('//')) {
    throw new TypeError(`${where}.prefix must be a local path starting with one "/", e.g. "/api/todos"`);
  }
  const trimmed = prefix.length > 1 && prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
  if (trimmed === '/') throw new TypeError(`${where}.prefix "/" would proxy every path; use e.g. "/api"`);
  // Only unreserved path characters: the prefix is compared with the raw request target.
  if (!/^(\/[A-Za-z0-9._~!$&'()*+,;=:@-]+)+$/.test(trimmed) || /\/\.\.?(\/|$)/.test(trimmed)) {
    throw new TypeError(
      `${where}.prefix "${prefix}" must be plain path segments (no "..", "%", "?", "#" or "//")`,
    );
  }
  // The /bff namespace belongs to the BFF's own endpoints, whose entry checks differ (routing.ts).
  if (/^\/bff(\/|$)/i.test(trimmed)) {
    throw new TypeError(
      `${where}.prefix "${prefix}" is inside /bff, which is reserved for the BFF's endpoints`,
    );
  }
  return trimmed;
}

function resolveUpstream(upstream: unknown, where: string): { origin: string; basePath: string } {
  let url: URL;
  try {
    url = new URL(String(upstream));
  } catch {
    throw new TypeError(
      `${where}.upstream must be an absolute http(s) URL, e.g. "http://127.0.0.1:4001/api"`,
    );
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new TypeError(`${where}.upstream must use http: or https: (got ${url.protocol})`);
  }
  if (url.username || url.password || url.search || url.hash || String(upstream).includes('#')) {
    throw new TypeError(`${where}.upstream must not carry credentials, a query or a fragment`);
  }
  const basePath = url.pathname.endsWith('/') ? url.pathname.slice(0, -1) : url.pathname;
  return { origin: url.origin, basePath };
}

function isToken(value: unknown): value is string {
  return typeof value === 'string' && /^[A-Za-z]+$/.test(value);
}
