// What the proxy does with an upstream's `Location` header (SECURITY P3, P8). Redirects are never
// followed. They are passed on only when they cannot turn the browser against the BFF itself or leak the
// upstream's internal address:
// - a Location on the upstream's own origin is rewritten to the route's public path when it lies under
//   the route's upstream base path, and otherwise refused (3xx) or dropped (e.g. on a 201);
// - any other Location is passed on as is (the browser goes there without cookies or tokens of ours);
// - a redirect the browser replays (307/308 always; 301/302 for every method but POST: Fetch, "HTTP-
//   redirect fetch") comes back with the same method, body and — same-origin — the session cookie and the
//   SPA's X-CSRF header. An API must not be able to make the SPA POST to /bff/logout or any route of the
//   host, so such a redirect is refused when the browser would land on the BFF's own origin. That is
//   decided on the value the browser actually gets, resolved as the browser resolves it: with the WHATWG
//   URL parser against the URL it asked for (the BFF's public URL), not the upstream's. The two differ:
//   behind an https BFF, an http upstream's `//app.example/bff/logout` (or `\\app.example`, `/\app…`,
//   `/<tab>/app…`, `https:/bff/logout`) means another origin to the upstream and the BFF's to the browser.
//   The one exception is our own rewrite onto the route's public prefix (see decideLocation).
// - any redirect into the BFF's own endpoints (`/bff/…`) is refused, whatever its status: even the GET a
//   browser follows a 302/303 with carries the session cookie and, from fetch(), the SPA's X-CSRF header
//   (fetch keeps request headers across redirects), so `Location: /bff/logout?sid=…` would sign the user out.

import { BFF_NAMESPACE } from '../namespace.js';
import { isUnderPrefix } from './path.js';

/** What to do with one response's `Location`. */
export type LocationDecision =
  | { readonly kind: 'keep' }
  | { readonly kind: 'rewrite'; readonly location: string }
  /** Not a redirect (e.g. `201 Created`): send the response without the header. */
  | { readonly kind: 'drop' }
  /** A redirect that must not reach the browser: answer 502 `ERR_BFF_UPSTREAM_REDIRECT`. */
  | { readonly kind: 'refuse' };

/** The route facts the decision needs (built once per route at start-up). */
export interface LocationRoute {
  readonly prefix: string;
  readonly upstreamOrigin: string;
  readonly upstreamBasePath: string;
  /**
   * Prefixes of other routes under this one (`/api/admin` under `/api`): a path there belongs to another
   * upstream, which a replayed rewrite must never reach.
   */
  readonly nestedPrefixes: readonly string[];
}

/** The call a `Location` answers. */
export interface LocationCall {
  readonly method: string;
  /** What the upstream was asked for: path + query. */
  readonly upstreamPath: string;
  /** What the browser asked for: the BFF's public origin + the request target. */
  readonly publicUrl: string;
}

const KEEP: LocationDecision = Object.freeze({ kind: 'keep' });
const DROP: LocationDecision = Object.freeze({ kind: 'drop' });
const REFUSE: LocationDecision = Object.freeze({ kind: 'refuse' });

/** Methods a 301/302 does not replay: POST becomes GET; GET, HEAD and OPTIONS are safe. */
const NOT_REPLAYED_BY_301_302: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'POST']);

/**
 * Decides on `location` as answered with `status` to `call` on `route`. `publicOrigin` is the BFF's own
 * origin, e.g. `https://app.example`.
 */
export function decideLocation(
  publicOrigin: string,
  route: LocationRoute,
  status: number,
  location: string | readonly string[],
  call: LocationCall,
): LocationDecision {
  const redirect = status >= 300 && status < 400;
  // Several Location headers: no single place a browser would go, so nothing to pass on.
  if (typeof location !== 'string') return redirect ? REFUSE : DROP;
  // First as the upstream meant it: relative references resolve against the URL it was asked for.
  const meant = parse(location, `${route.upstreamOrigin}${call.upstreamPath}`);
  if (meant === undefined) return redirect ? REFUSE : DROP;
  let decision: LocationDecision;
  if (meant.origin !== route.upstreamOrigin) {
    decision = KEEP;
  } else {
    const base = route.upstreamBasePath;
    const path = meant.pathname;
    if (base !== '' && path !== base && !path.startsWith(`${base}/`)) return redirect ? REFUSE : DROP;
    // Built from the parsed path: dot segments (also `%2e`), `\` and tabs are already resolved or gone.
    decision = {
      kind: 'rewrite',
      location: `${route.prefix}${path.slice(base.length)}${meant.search}${meant.hash}`,
    };
  }
  if (!redirect) return decision;
  const replayed = replays(status, call.method);
  // Then as the browser will take it: the value it gets, against the URL it asked for.
  const landing = parse(decision.kind === 'rewrite' ? decision.location : location, call.publicUrl);
  // A value the browser cannot resolve fails the call there; there is nothing to pass on either.
  if (landing === undefined) return REFUSE;
  if (landing.origin !== publicOrigin) return decision;
  // Letter case too: the entry matcher answers `/BFF/…` 404, but nothing of ours should send it there.
  if (isUnderPrefix(landing.pathname.toLowerCase(), BFF_NAMESPACE)) return REFUSE;
  if (!replayed) return decision;
  // Our rewrite is kept for replays: it lands on the same route, so the browser's second call goes to
  // the same upstream with the same token — nothing the upstream could not have done by answering the
  // first one — and APIs do answer a POST with a 307/308 to their canonical path (e.g. a trailing
  // slash). It is checked here the browser's way all the same, so no dot segment, encoding or backslash
  // can take it out of the route's prefix, or into a route nested under it (another upstream, another
  // token). Anything else on the BFF's origin — whatever the upstream wrote — is refused.
  if (decision.kind === 'rewrite' && staysOnRoute(landing.pathname, route)) return decision;
  return REFUSE;
}

/** True when the browser sends the call's method and body again to the new `Location`. */
function replays(status: number, method: string): boolean {
  if (status === 307 || status === 308) return true;
  return (status === 301 || status === 302) && !NOT_REPLAYED_BY_301_302.has(method);
}

/**
 * `pathname` (serialized by the URL parser, as the browser will send it) is matched to this route by the
 * route table: under its prefix, and under no longer prefix nested in it.
 */
function staysOnRoute(pathname: string, route: LocationRoute): boolean {
  if (!isUnderPrefix(pathname, route.prefix)) return false;
  for (const nested of route.nestedPrefixes) if (isUnderPrefix(pathname, nested)) return false;
  return true;
}

function parse(value: string, base: string): URL | undefined {
  try {
    return new URL(value, base);
  } catch {
    return undefined;
  }
}
