// SECURITY X5: one canonical matcher decides what is a BFF endpoint or a remote-API call, for the entry
// checks (cross-site, session) and the routers alike. Express routes case-insensitively and forgives a
// trailing slash by default, while a string test on the raw path does neither; when the two disagree, a
// path like `/BFF/logout` reaches the logout handler without the session middleware and the cross-site
// check in front of it. So: every router the BFF builds is case-sensitive and strict (ROUTER_OPTIONS),
// endpoints are matched exactly, and anything that only *resembles* a BFF endpoint or a remote-API prefix
// (other letter case, percent-encoded letters, repeated or trailing slashes, `;` parameters, `\`, dot
// segments) is answered 404 before any router or handler sees it.
import { BACKCHANNEL_PATH } from './backchannel/options.js';
import { BFF_NAMESPACE } from './namespace.js';
import type { ResolvedRemoteApi } from './proxy/options.js';
import { isUnderPrefix } from './proxy/path.js';

/** Options for every Express router the BFF builds: exact letter case, no trailing-slash leniency. */
export const ROUTER_OPTIONS = Object.freeze({ caseSensitive: true, strict: true });

export { BFF_NAMESPACE };

/** Every BFF endpoint path, exactly as routed. A path under `/bff` that is not listed here is a 404. */
export const BFF_ENDPOINTS: readonly string[] = Object.freeze([
  '/bff/login',
  '/bff/silent-login',
  '/bff/callback',
  '/bff/silent-login-callback',
  '/bff/user',
  '/bff/logout',
  '/bff/signed-out',
  '/bff/diagnostics',
  BACKCHANNEL_PATH,
]);

/**
 * What the entry middleware does with a request path:
 * - `endpoint`: a BFF endpoint (cross-site check, then the session middleware);
 * - `backchannel`: the back-channel logout endpoint (an OP calls it server-to-server: no cross-site check);
 * - `api`: under a remote-API prefix (cross-site check, then the proxy, which does the rest);
 * - `not-found`: under `/bff` but no endpoint, or a look-alike of an endpoint or prefix: 404;
 * - `other`: the host's business.
 */
export type EntryKind = 'endpoint' | 'backchannel' | 'api' | 'not-found' | 'other';

/** Cheap test for "could normalise to something else": anything but lower-case plain segments. */
const MAY_NORMALISE = /[%\\;A-Z]|\/\/|\/\.|\/$/;
/** Needs the full normal form; without these only letter case (and a trailing slash) can differ. */
const STRUCTURAL = /[%\\;]|\/\/|\/\./;

/**
 * Builds the matcher for one BFF. `path` is the request's pathname as Express routes it (`req.path`:
 * undecoded, no query).
 */
export function createEntryMatcher(remoteApis: readonly ResolvedRemoteApi[]): (path: string) => EntryKind {
  const endpoints = new Set(BFF_ENDPOINTS);
  const prefixes = remoteApis.map((api) => api.prefix);
  const lowerPrefixes = prefixes.map((prefix) => prefix.toLowerCase());
  return (path) => {
    if (path === BFF_NAMESPACE || path.startsWith(`${BFF_NAMESPACE}/`)) {
      if (!endpoints.has(path)) return 'not-found';
      return path === BACKCHANNEL_PATH ? 'backchannel' : 'endpoint';
    }
    // The proxy's own prefix test (path.ts), so the entry and the proxy agree on what is an API call.
    for (const prefix of prefixes) if (isUnderPrefix(path, prefix)) return 'api';
    if (!MAY_NORMALISE.test(path)) return 'other';
    // Upper-case letters alone (common in hashed asset names) only need lower-casing.
    const normal = STRUCTURAL.test(path) ? normalise(path) : path.toLowerCase();
    if (normal === BFF_NAMESPACE || normal.startsWith(`${BFF_NAMESPACE}/`)) return 'not-found';
    for (const prefix of lowerPrefixes) if (isUnderPrefix(normal, prefix)) return 'not-found';
    return 'other';
  };
}

/**
 * A deliberately generous normal form, used only to spot look-alikes (never to route): percent-escapes
 * decoded (repeatedly, for double encoding), NFKC, `\` as `/`, lower case, `;` parameters dropped,
 * repeated slashes merged, dot segments resolved, trailing slash dropped.
 */
export function normalise(path: string): string {
  let value = path;
  for (let i = 0; i < 3 && value.includes('%'); i++) {
    // Byte-wise, so a malformed or non-UTF-8 escape elsewhere cannot stop the letters from decoding.
    value = value.replace(/%([0-9A-Fa-f]{2})/g, (_m, hex: string) =>
      String.fromCharCode(Number.parseInt(hex, 16)),
    );
  }
  value = value
    .normalize('NFKC')
    .replaceAll('\\', '/')
    .toLowerCase()
    .replace(/;[^/]*/g, '');
  const out: string[] = [];
  for (const segment of value.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') out.pop();
    else out.push(segment);
  }
  return `/${out.join('/')}`;
}
