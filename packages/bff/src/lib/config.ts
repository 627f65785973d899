// Options of createBff, validated once into a frozen ResolvedBffConfig. Every check throws a TypeError
// whose message says what to set, so a misconfigured host fails at start-up, not on the first login.
import { type ResolvedBackchannelOptions, resolveBackchannelOptions } from './backchannel/options.js';
import type { BffOptions } from './bff-options.js';
import {
  fail,
  isLocalPath,
  isLoopbackHost,
  parseUrl,
  type ResolvedClientAuth,
  requireString,
  resolveClientAuth,
  resolveScope,
  resolveSessionSecrets,
  seconds,
} from './config-checks.js';
import { type ResolvedDpop, resolveDpop } from './dpop/options.js';
import { ID_TOKEN_ALGORITHMS } from './id-token-algorithms.js';
import { type ResolvedRemoteApi, resolveRemoteApis } from './proxy/options.js';

export { isLocalPath, isLoopbackHost, type ResolvedClientAuth } from './config-checks.js';

/** createBff's options after validation (frozen). Shared by every route module through BffContext. */
export interface ResolvedBffConfig {
  readonly issuer: string;
  readonly clientId: string;
  readonly clientAuth: ResolvedClientAuth;
  /** Space-separated scope string sent at login. */
  readonly scope: string;
  readonly resource: readonly string[];
  /** Public base URL without a trailing slash. */
  readonly baseUrl: string;
  /** Public origin (scheme://host[:port]) for Origin checks and postMessage. */
  readonly origin: string;
  /** `<baseUrl>/bff/callback`. */
  readonly redirectUri: string;
  /** `<baseUrl>/bff/signed-out`, the post-logout landing page (checks `state`, O5). */
  readonly postLogoutRedirectUri: string;
  /** Whether the base URL is plain http on a loopback host (browsers treat it as a secure context). */
  readonly loopbackHttp: boolean;
  readonly sessionSecrets: readonly string[];
  readonly cookieName: string;
  readonly idleTimeout: number;
  readonly absoluteTimeout: number;
  readonly touchInterval: number;
  readonly refreshMargin: number;
  readonly httpTimeout: number;
  readonly fetchUserInfo: boolean;
  /** The registered ID-token `alg`, or undefined to accept the OP's advertised asymmetric set. */
  readonly idTokenSignedResponseAlg: string | undefined;
  readonly maxSessionsPerUser: number;
  readonly diagnostics: boolean;
  readonly errorPath: string | undefined;
  /** When login pushes its authorization request (PAR, RFC 9126). */
  readonly pushedAuthorizationRequests: 'auto' | 'always' | 'never';
  /** DPoP for user tokens, or undefined when off. */
  readonly dpop: ResolvedDpop | undefined;
  readonly userClaimValues: 'json' | 'string';
  readonly allowInsecureIssuer: boolean;
  readonly remoteApis: readonly ResolvedRemoteApi[];
  readonly backchannel: ResolvedBackchannelOptions;
}

const knownOptions = new Set<string>([
  'issuer',
  'clientId',
  'clientSecret',
  'clientPrivateKey',
  'responseType',
  'scopes',
  'apiScopes',
  'resource',
  'baseUrl',
  'sessionSecret',
  'store',
  'cookieName',
  'idleTimeout',
  'absoluteTimeout',
  'touchInterval',
  'refreshMargin',
  'httpTimeout',
  'fetchUserInfo',
  'idTokenSignedResponseAlg',
  'maxSessionsPerUser',
  'diagnostics',
  'errorPath',
  'pushedAuthorizationRequests',
  'dpop',
  'userClaimValues',
  'remoteApis',
  'backchannel',
  'logger',
  'fetch',
  'clock',
  'getClientAccessToken',
  'dangerouslyAllowInsecureIssuer',
  'dangerouslyAllowInsecureBaseUrl',
]);

/** Validates createBff options once; throws a TypeError that says the fix. */
export function resolveConfig(options: BffOptions): ResolvedBffConfig {
  if (typeof options !== 'object' || options === null) fail('pass an options object');
  for (const key of Object.keys(options)) {
    if (!knownOptions.has(key)) fail(`unknown option \`${key}\` (check the spelling against the README)`);
  }

  // L1: the code flow is the only flow.
  if (options.responseType !== undefined && options.responseType !== 'code') {
    fail(
      `\`responseType\` must be "code" (got "${String(options.responseType)}"); implicit and hybrid flows are not supported`,
    );
  }

  const issuer = requireString(
    options.issuer,
    'issuer',
    'the OpenID provider issuer URL, e.g. https://idp.example',
  );
  const issuerUrl = parseUrl(issuer, 'issuer');
  const allowInsecureIssuer = options.dangerouslyAllowInsecureIssuer === true;
  if (issuerUrl.protocol === 'http:' && !isLoopbackHost(issuerUrl.hostname) && !allowInsecureIssuer) {
    fail(
      '`issuer` must use https (http is accepted for loopback hosts only, or set `dangerouslyAllowInsecureIssuer`)',
    );
  }
  if (issuerUrl.protocol !== 'http:' && issuerUrl.protocol !== 'https:')
    fail('`issuer` must be an http(s) URL');

  const clientId = requireString(options.clientId, 'clientId', "the BFF's client id at the provider");

  const clientAuth = resolveClientAuth(options.clientSecret, options.clientPrivateKey);

  const scope = resolveScope(options.scopes, options.apiScopes);

  const resource =
    options.resource === undefined
      ? []
      : typeof options.resource === 'string'
        ? [options.resource]
        : [...options.resource];
  for (const r of resource) {
    const u = parseUrl(r, 'resource');
    if (u.hash) fail('`resource` must not contain a fragment (RFC 8707)');
  }

  const baseUrlRaw = requireString(
    options.baseUrl,
    'baseUrl',
    "the BFF's public URL, e.g. https://app.example",
  );
  const base = parseUrl(baseUrlRaw, 'baseUrl');
  if (base.search || base.hash) fail('`baseUrl` must not have a query or fragment');
  const loopbackHttp = base.protocol === 'http:' && isLoopbackHost(base.hostname);
  if (base.protocol === 'http:' && !loopbackHttp && options.dangerouslyAllowInsecureBaseUrl !== true) {
    fail('`baseUrl` must use https (http is accepted for localhost/127.0.0.1 only)');
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') fail('`baseUrl` must be an http(s) URL');
  const baseUrl = base.href.replace(/\/+$/, '');
  if (base.pathname !== '/') {
    // __Host- cookies need Path=/ and the Duende contract lives at /bff on the origin.
    fail('`baseUrl` must be an origin without a path (mount the BFF at the root of its host)');
  }

  const sessionSecrets = resolveSessionSecrets(options.sessionSecret);

  const cookieName = options.cookieName ?? '__Host-bff';
  if (typeof cookieName !== 'string' || !/^__Host-[A-Za-z0-9._-]{1,64}$/.test(cookieName)) {
    fail('`cookieName` must start with "__Host-" followed by letters, digits, ".", "_" or "-"');
  }

  const idleTimeout = seconds(options.idleTimeout, 'idleTimeout', 7200, 60, 30 * 86400);
  const absoluteTimeout = seconds(options.absoluteTimeout, 'absoluteTimeout', 43200, 60, 365 * 86400);
  if (absoluteTimeout < idleTimeout) fail('`absoluteTimeout` must be ≥ `idleTimeout`');
  const touchInterval = seconds(
    options.touchInterval,
    'touchInterval',
    Math.min(60, idleTimeout / 10),
    0,
    idleTimeout / 2,
  );
  const refreshMargin = seconds(options.refreshMargin, 'refreshMargin', 60, 0, 3600);
  const httpTimeout = seconds(options.httpTimeout, 'httpTimeout', 10, 0.1, 120);

  let errorPath: string | undefined;
  if (options.errorPath !== undefined) {
    if (
      typeof options.errorPath !== 'string' ||
      !isLocalPath(options.errorPath) ||
      options.errorPath.includes('?')
    ) {
      fail('`errorPath` must be a local path like "/error" (no query)');
    }
    errorPath = options.errorPath;
  }

  const idTokenSignedResponseAlg = options.idTokenSignedResponseAlg;
  if (idTokenSignedResponseAlg !== undefined && !ID_TOKEN_ALGORITHMS.includes(idTokenSignedResponseAlg)) {
    fail(
      `\`idTokenSignedResponseAlg\` must be the client's registered asymmetric algorithm, one of ${ID_TOKEN_ALGORITHMS.join(', ')} (got ${JSON.stringify(idTokenSignedResponseAlg)}); "none" and HS* are never accepted`,
    );
  }
  const maxSessionsPerUser = options.maxSessionsPerUser ?? 20;
  if (!Number.isInteger(maxSessionsPerUser) || maxSessionsPerUser < 1 || maxSessionsPerUser > 10_000) {
    fail(
      `\`maxSessionsPerUser\` must be an integer between 1 and 10000, e.g. 20 (got ${String(maxSessionsPerUser)})`,
    );
  }

  const userClaimValues = options.userClaimValues ?? 'json';
  if (userClaimValues !== 'json' && userClaimValues !== 'string') {
    fail(
      `\`userClaimValues\` must be "json" (values as issued) or "string" (Duende's shape), got ${JSON.stringify(userClaimValues)}`,
    );
  }

  const pushedAuthorizationRequests = options.pushedAuthorizationRequests ?? 'auto';
  if (
    pushedAuthorizationRequests !== 'auto' &&
    pushedAuthorizationRequests !== 'always' &&
    pushedAuthorizationRequests !== 'never'
  ) {
    fail(
      `\`pushedAuthorizationRequests\` must be "auto" (push when the OP has a PAR endpoint), "always" or "never", got ${JSON.stringify(pushedAuthorizationRequests)}`,
    );
  }

  for (const fn of ['fetch', 'clock', 'getClientAccessToken'] as const) {
    if (options[fn] !== undefined && typeof options[fn] !== 'function') fail(`\`${fn}\` must be a function`);
  }

  return Object.freeze({
    issuer,
    clientId,
    clientAuth,
    scope,
    resource: Object.freeze(resource),
    baseUrl,
    origin: base.origin,
    redirectUri: `${baseUrl}/bff/callback`,
    postLogoutRedirectUri: `${baseUrl}/bff/signed-out`,
    loopbackHttp,
    sessionSecrets,
    cookieName,
    idleTimeout,
    absoluteTimeout,
    touchInterval,
    refreshMargin,
    httpTimeout,
    fetchUserInfo: options.fetchUserInfo ?? true,
    idTokenSignedResponseAlg,
    maxSessionsPerUser,
    diagnostics: options.diagnostics ?? process.env.NODE_ENV === 'development',
    errorPath,
    pushedAuthorizationRequests,
    dpop: resolveDpop(options.dpop),
    userClaimValues,
    allowInsecureIssuer,
    remoteApis: resolveRemoteApis(options.remoteApis),
    backchannel: resolveBackchannelOptions(options.backchannel),
  });
}
