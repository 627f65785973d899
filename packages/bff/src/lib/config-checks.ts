// The validation helpers of createBff's options (config.ts): each check throws a TypeError whose message
// says what to set. A leaf: it imports nothing of the BFF.
import type { CryptoKey, JWK } from 'jose';

/** Client authentication, resolved. */
export type ResolvedClientAuth =
  | { readonly method: 'client_secret_basic'; readonly secret: string }
  | { readonly method: 'private_key_jwt'; readonly key: CryptoKey | JWK };

const scopeToken = /^[\x21\x23-\x5b\x5d-\x7e]+$/;

/** True for localhost, 127.0.0.0/8 and ::1 host names. */
export function isLoopbackHost(hostname: string): boolean {
  return (
    hostname === 'localhost' ||
    hostname.endsWith('.localhost') ||
    /^127(?:\.\d{1,3}){3}$/.test(hostname) ||
    hostname === '[::1]'
  );
}

export function fail(message: string): never {
  throw new TypeError(`createBff: ${message}`);
}

export function requireString(value: unknown, name: string, hint: string): string {
  if (typeof value !== 'string' || value.trim() === '') fail(`\`${name}\` is required: ${hint}`);
  return value;
}

export function seconds(value: unknown, name: string, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    fail(`\`${name}\` must be a number of seconds between ${min} and ${max} (got ${String(value)})`);
  }
  return value;
}

export function parseUrl(value: string, name: string): URL {
  try {
    return new URL(value);
  } catch {
    return fail(`\`${name}\` must be an absolute URL (got "${value}")`);
  }
}

/** Client authentication: a secret (client_secret_basic) or a private key (private_key_jwt), not both. */
export function resolveClientAuth(clientSecret: unknown, clientPrivateKey: unknown): ResolvedClientAuth {
  let clientAuth: ResolvedClientAuth;
  if (clientSecret !== undefined && clientPrivateKey !== undefined) {
    fail('set either `clientSecret` or `clientPrivateKey`, not both');
  } else if (clientPrivateKey !== undefined) {
    if (typeof clientPrivateKey !== 'object' || clientPrivateKey === null) {
      fail('`clientPrivateKey` must be a CryptoKey or a private JWK');
    }
    clientAuth = Object.freeze({ method: 'private_key_jwt', key: clientPrivateKey as CryptoKey | JWK });
  } else {
    const secret = requireString(
      clientSecret,
      'clientSecret',
      'the confidential client secret (or set `clientPrivateKey` for private_key_jwt)',
    );
    clientAuth = Object.freeze({ method: 'client_secret_basic', secret });
  }
  return clientAuth;
}

/** The scope string sent at login: `scopes` plus `apiScopes`, valid scope tokens, with `openid`. */
export function resolveScope(scopes: unknown, apiScopes: unknown): string {
  const requested = scopes ?? ['openid', 'profile', 'offline_access'];
  const extra = apiScopes ?? [];
  if (!Array.isArray(requested) || !Array.isArray(extra))
    fail('`scopes` and `apiScopes` must be arrays of strings');
  const allScopes = [...new Set<unknown>([...requested, ...extra])];
  for (const s of allScopes) {
    if (typeof s !== 'string' || !scopeToken.test(s)) fail(`scope "${String(s)}" is not a valid scope token`);
  }
  if (!allScopes.includes('openid')) fail('`scopes` must include "openid"');
  return allScopes.join(' ');
}

/** The session secrets (the first signs and encrypts; all are accepted), each ≥ 32 characters. */
export function resolveSessionSecrets(sessionSecret: unknown): readonly string[] {
  const secretsRaw = typeof sessionSecret === 'string' ? [sessionSecret] : sessionSecret;
  if (!Array.isArray(secretsRaw) || secretsRaw.length === 0) {
    fail('`sessionSecret` is required: one or more random strings of at least 32 characters');
  }
  for (const s of secretsRaw) {
    if (typeof s !== 'string' || s.length < 32) {
      fail(
        'every `sessionSecret` must be a string of at least 32 characters (e.g. `openssl rand -base64 48`)',
      );
    }
  }
  return Object.freeze([...(secretsRaw as string[])]);
}

/**
 * A local, same-origin path: starts with a single `/`, no `//` or `/\` prefix, no backslash, only
 * printable ASCII (no control characters or spaces), at most 2048 characters (L14). Defence in depth:
 * its path part (before `?` or `#`) has no percent-encoded `/` or `\` and no dot segment (`.`, `..`,
 * also percent-encoded or with a `;` parameter), which a proxy, framework or later decoding step could
 * turn into `//host` (`/%2F%2Fhost`, `/..//host`).
 */
export function isLocalPath(value: string): boolean {
  if (
    value.length === 0 ||
    value.length > 2048 ||
    value[0] !== '/' ||
    value[1] === '/' ||
    value.includes('\\') ||
    !/^[\x21-\x7e]+$/.test(value)
  ) {
    return false;
  }
  const end = value.search(/[?#]/);
  const path = end === -1 ? value : value.slice(0, end);
  if (/%(?:2f|5c)/i.test(path)) return false;
  for (const segment of path.split('/')) {
    const name = (segment.split(';')[0] ?? '').replace(/%2e/gi, '.');
    if (name === '.' || name === '..') return false;
  }
  return true;
}
