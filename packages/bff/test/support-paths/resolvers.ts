// Small models of how upstream servers turn a request path into the resource path they serve, for the
// P1a property tests. Each is deliberately on the permissive side of its server's settings (encoded
// slashes and backslashes allowed, no firewall in front): if the BFF's checks are safe against the
// permissive model, they are safe against the stricter default. A model returns the resolved path, or
// null when the server would refuse the request (400), which is a safe outcome.
import { posix } from 'node:path';

/** A model resolver: upstream request path (no query) → resolved path, or null for "refused". */
export type Resolver = (path: string) => string | null;

/** `%XX` → byte, bytes as UTF-8; null when malformed (every modelled server then answers 400). */
function percentDecode(value: string): string | null {
  try {
    return decodeURIComponent(value);
  } catch {
    return null;
  }
}

/**
 * RFC 3986 §5.2.4 remove_dot_segments on a path starting with "/", optionally merging repeated slashes
 * first (Tomcat, nginx). A ".." above the root is refused (Tomcat and nginx answer 400) when
 * `refuseAboveRoot`, else clamped to the root (WHATWG URL, Node's path.posix).
 */
function removeDots(path: string, mergeSlashes: boolean, refuseAboveRoot: boolean): string | null {
  const input = mergeSlashes ? path.replace(/\/{2,}/g, '/') : path;
  const parts = input.split('/').slice(1);
  const out: string[] = [];
  parts.forEach((part, index) => {
    const last = index === parts.length - 1;
    if (part === '.') {
      if (last) out.push('');
      return;
    }
    if (part === '..') {
      if (out.length === 0) {
        if (refuseAboveRoot) out.push('\0above-root');
      } else {
        out.pop();
      }
      if (last) out.push('');
      return;
    }
    out.push(part);
  });
  if (out.includes('\0above-root')) return null;
  return `/${out.join('/')}`;
}

/** Tomcat-style path parameter removal: from each ";" up to the next "/" (CoyoteAdapter.parsePathParameters). */
function stripPathParameters(path: string): string {
  return path.replace(/;[^/]*/g, '');
}

/**
 * Tomcat (also Jetty's and Spring's servlet path): path parameters removed on the raw path, then
 * percent-decoded (with ALLOW_ENCODED_SLASH and ALLOW_BACKSLASH on), then "\" as "/", slashes merged
 * and dot segments resolved; ".." above the root → 400.
 */
export const tomcat: Resolver = (path) => {
  const decoded = percentDecode(stripPathParameters(path));
  if (decoded === null) return null;
  return removeDots(decoded.replaceAll('\\', '/'), true, true);
};

/**
 * A stack that decodes before it looks for parameters (a servlet filter calling URLDecoder on the URI,
 * Spring with urlDecode before removeSemicolonContent): "%3B" becomes a parameter separator there.
 */
export const decodeFirst: Resolver = (path) => {
  const decoded = percentDecode(path);
  if (decoded === null) return null;
  return removeDots(stripPathParameters(decoded).replaceAll('\\', '/'), true, true);
};

/**
 * nginx (ngx_http_parse_complex_uri): percent-decodes, merges slashes, resolves dot segments; ";" is
 * data. On Windows builds "\" is a separator too, which this model includes.
 */
export const nginx: Resolver = (path) => {
  const decoded = percentDecode(path);
  if (decoded === null) return null;
  return removeDots(decoded.replaceAll('\\', '/'), true, true);
};

/** WHATWG URL parser (Node's `new URL`, undici, browsers): "\" is "/", "%2e" is ".", nothing else decoded. */
export const whatwg: Resolver = (path) => {
  try {
    return new URL(path, 'http://upstream.test').pathname;
  } catch {
    return null;
  }
};

/** Express static files (send / serve-static): decodeURIComponent, then path.posix.normalize. */
export const expressStatic: Resolver = (path) => {
  const decoded = percentDecode(path);
  if (decoded === null || decoded.includes('\0')) return null;
  return posix.normalize(decoded);
};

/** An application that decodes twice (a framework decode plus its own): double encoding matters there. */
export const doubleDecode: Resolver = (path) => {
  const once = percentDecode(path);
  if (once === null) return null;
  const twice = percentDecode(once) ?? once;
  return removeDots(stripPathParameters(twice).replaceAll('\\', '/'), true, true);
};

/** A stack that applies Unicode NFKC to the decoded path (fullwidth "．" and "／" become "." and "/"). */
export const nfkc: Resolver = (path) => {
  const decoded = percentDecode(path);
  if (decoded === null) return null;
  return removeDots(stripPathParameters(decoded.normalize('NFKC')).replaceAll('\\', '/'), true, true);
};

/** Every model, by name. */
export const RESOLVERS: Readonly<Record<string, Resolver>> = Object.freeze({
  tomcat,
  decodeFirst,
  nginx,
  whatwg,
  expressStatic,
  doubleDecode,
  nfkc,
});

/** True when `resolved` is `base` or below it (`base` '' is the upstream's root: everything is below). */
export function isInside(resolved: string, base: string): boolean {
  return base === '' || resolved === base || resolved.startsWith(`${base}/`);
}

/** The number of "/"-separated segments a path has (the split the BFF checked). */
export function segmentCount(path: string): number {
  return path.split('/').length;
}
