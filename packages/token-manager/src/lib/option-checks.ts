// Checks shared by the option resolvers of createTokenManager: each bad value throws a TypeError
// that names the option and says the fix.

/** Throws the TypeError every bad option gets, prefixed with the factory's name. */
export function fail(message: string): never {
  throw new TypeError(`createTokenManager: ${message}`);
}

/** Rejects keys of `object` outside `allowed`, naming the known ones (catches typos). */
export function rejectUnknown(object: object, allowed: ReadonlySet<string>, where: string): void {
  for (const key of Object.keys(object)) {
    if (!allowed.has(key)) {
      fail(`unknown option ${where}${key}; the known options are ${[...allowed].join(', ')}`);
    }
  }
}

/** A duration in seconds ≥ `min`, or `fallback` when absent. */
export function seconds(value: unknown, name: string, fallback: number, min = 0): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min) {
    fail(`${name} must be a number of seconds >= ${min}, got ${String(value)}`);
  }
  return value;
}

/** A boolean option, false when absent. */
export function flag(value: unknown, name: string): boolean {
  if (value === undefined) return false;
  if (typeof value !== 'boolean') fail(`${name} must be true or false`);
  return value;
}

/** An absolute http(s) URL without query or fragment, or undefined when absent. */
export function url(value: unknown, name: string): URL | undefined {
  if (value === undefined) return undefined;
  if (!(value instanceof URL) && typeof value !== 'string') fail(`${name} must be a URL string`);
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    fail(`${name} must be an absolute URL, got ${JSON.stringify(String(value))}`);
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') fail(`${name} must be an https: URL`);
  if (parsed.search || parsed.hash) fail(`${name} must not have a query or fragment`);
  return parsed;
}

/** Splits scopes on whitespace, removes duplicates and sorts them, so the cache key ignores order. */
export function normalizeScopes(value: unknown, name = 'scope'): string[] {
  if (value === undefined) return [];
  const parts =
    typeof value === 'string'
      ? value.split(/\s+/)
      : Array.isArray(value)
        ? value.flatMap((part: unknown) => {
            if (typeof part !== 'string') fail(`${name} must be a string or an array of strings`);
            return part.split(/\s+/);
          })
        : fail(`${name} must be a string or an array of strings`);
  return [...new Set(parts.filter(Boolean))].sort();
}

/** Resource indicators must be absolute URIs without a fragment (RFC 8707 §2). */
export function normalizeResources(value: unknown, name = 'resource'): string[] {
  if (value === undefined) return [];
  const list =
    typeof value === 'string'
      ? [value]
      : Array.isArray(value)
        ? value
        : fail(`${name} must be a string or an array of strings`);
  const out = new Set<string>();
  for (const item of list) {
    if (typeof item !== 'string' || !URL.canParse(item) || item.includes('#')) {
      fail(`${name} values must be absolute URIs without a fragment (RFC 8707), got ${JSON.stringify(item)}`);
    }
    out.add(item);
  }
  return [...out].sort();
}
