// What the proxy does with an upstream's `Location` header (SECURITY P3, P8). Redirects are never
// followed. They are passed on only when they cannot turn the browser against the BFF itself or leak the
// upstream's internal address:
// - a 307/308 (which the browser replays with the same method and body, and same-origin with the same
//   X-CSRF header) into the BFF's own origin is refused: an API must not be able to make the SPA POST
//   to /bff/logout or another route of the host;
// - a Location on the upstream's own origin is rewritten to the route's public path when it lies under
//   the route's upstream base path, and otherwise refused (3xx) or dropped (e.g. on a 201);
// - any other origin is passed on as is (the browser goes there without cookies or tokens of ours).

/** What to do with one response's `Location`. */
export type LocationDecision =
  | { readonly kind: 'keep' }
  | { readonly kind: 'rewrite'; readonly location: string }
  /** Not a redirect (e.g. `201 Created`): send the response without the header. */
  | { readonly kind: 'drop' }
  /** A redirect that must not reach the browser: answer 502 `ERR_BFF_UPSTREAM_REDIRECT`. */
  | { readonly kind: 'refuse' };

/** The route facts the decision needs. */
export interface LocationRoute {
  readonly prefix: string;
  readonly upstreamOrigin: string;
  readonly upstreamBasePath: string;
}

const KEEP: LocationDecision = Object.freeze({ kind: 'keep' });
const DROP: LocationDecision = Object.freeze({ kind: 'drop' });
const REFUSE: LocationDecision = Object.freeze({ kind: 'refuse' });

/**
 * Decides on `location` as answered with `status` to the request for `upstreamPath` (path + query) on
 * `route`. `publicOrigin` is the BFF's own origin, e.g. `https://app.example`.
 */
export function decideLocation(
  publicOrigin: string,
  route: LocationRoute,
  status: number,
  location: string | readonly string[],
  upstreamPath: string,
): LocationDecision {
  const redirect = status >= 300 && status < 400;
  // Several Location headers: no single place a browser would go, so nothing to pass on.
  if (typeof location !== 'string') return redirect ? REFUSE : DROP;
  let url: URL;
  try {
    // Relative references resolve against the URL the upstream was asked for, as a browser would.
    url = new URL(location, `${route.upstreamOrigin}${upstreamPath}`);
  } catch {
    return redirect ? REFUSE : DROP;
  }
  if ((status === 307 || status === 308) && url.origin === publicOrigin) return REFUSE;
  if (url.origin !== route.upstreamOrigin) return KEEP;
  const base = route.upstreamBasePath;
  const path = url.pathname;
  if (base === '' || path === base || path.startsWith(`${base}/`)) {
    return { kind: 'rewrite', location: `${route.prefix}${path.slice(base.length)}${url.search}${url.hash}` };
  }
  return redirect ? REFUSE : DROP;
}
