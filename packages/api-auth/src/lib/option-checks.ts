// Checks shared by the option resolvers of createAccessTokenValidator: each bad value throws a
// TypeError that names the option and says the fix.

/** Throws the TypeError every bad option gets, prefixed with the package name. */
export function fail(message: string): never {
  throw new TypeError(`@gatehouse/api-auth: ${message}`);
}

/** Rejects keys of `value` outside `allowed`, naming the allowed ones (catches typos). */
export function checkKeys(value: object, allowed: Set<string>, where: string): void {
  for (const key of Object.keys(value)) {
    if (!allowed.has(key)) fail(`unknown option "${where}${key}"; allowed: ${[...allowed].join(', ')}`);
  }
}

/** A non-empty string option. */
export function nonEmptyString(value: unknown, name: string): string {
  if (typeof value !== 'string' || value.length === 0) fail(`"${name}" must be a non-empty string`);
  return value;
}

/** A duration in seconds within [min, max], or `fallback` when absent. */
export function seconds(value: unknown, name: string, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    fail(`"${name}" must be a number of seconds between ${min} and ${max} (got ${String(value)})`);
  }
  return value;
}

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);

/** Checks an outbound URL: https, or http on loopback, or http anywhere with the dangerous switch. */
export function checkUrl(value: unknown, name: string, allowInsecure: boolean): string {
  const text = nonEmptyString(value, name);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return fail(`"${name}" must be an absolute URL (got "${text}")`);
  }
  if (url.protocol === 'https:') return text;
  if (url.protocol === 'http:' && (allowInsecure || LOOPBACK.has(url.hostname))) return text;
  return fail(
    `"${name}" must use https (plain http is allowed on loopback only; set dangerouslyAllowInsecureHttp: true to override)`,
  );
}

/** Every asymmetric JWS algorithm jose verifies on Node 20. */
export const ASYMMETRIC_ALGORITHMS: readonly string[] = Object.freeze([
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
]);

/** Accepted JWS algorithms: asymmetric ones only (RFC 8725 §3.1); all of them when absent. */
export function resolveAlgorithms(value: unknown, name: string, what: string): readonly string[] {
  if (value === undefined) return ASYMMETRIC_ALGORITHMS;
  if (!Array.isArray(value) || value.length === 0)
    fail(`"${name}" must be a non-empty array such as ["ES256"]`);
  for (const alg of value) {
    if (alg === 'none' || (typeof alg === 'string' && /^HS\d+$/i.test(alg))) {
      fail(
        `"${name}" must not contain "${alg}": ${what} must be signed with an asymmetric key (RFC 8725 §3.1)`,
      );
    }
    if (!ASYMMETRIC_ALGORITHMS.includes(alg)) {
      fail(
        `"${name}" contains unsupported "${String(alg)}"; choose from ${ASYMMETRIC_ALGORITHMS.join(', ')}`,
      );
    }
  }
  return Object.freeze([...new Set(value as string[])]);
}
