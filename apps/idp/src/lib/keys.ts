import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';

/** A private JWKS as oidc-provider's `jwks` option expects it. */
export interface PrivateJwks {
  keys: JWK[];
}

/** File (inside `keysDir`) that keeps the IdP's private signing keys between restarts. */
export const SIGNING_KEYS_FILE = 'idp-signing-keys.json';

/** File (inside `dataDir`) with the keys that sign the IdP's cookies (its session cookie among them). */
export const COOKIE_KEYS_FILE = 'idp-cookie-keys.json';

/** Generates a signing key (default RS256) as a private JWK with `kid` (its thumbprint), `alg` and `use`. */
export async function generateSigningJwk(alg: 'RS256' | 'ES256' | 'PS256' = 'RS256'): Promise<JWK> {
  const { privateKey } = await generateKeyPair(alg, { extractable: true, modulusLength: 2048 });
  const jwk = await exportJWK(privateKey);
  jwk.kid = await calculateJwkThumbprint(jwk);
  jwk.alg = alg;
  jwk.use = 'sig';
  return jwk;
}

/** The public part of a JWK (drops every private member). */
export function publicJwk(jwk: JWK): JWK {
  const {
    d: _d,
    p: _p,
    q: _q,
    dp: _dp,
    dq: _dq,
    qi: _qi,
    oth: _oth,
    k: _k,
    priv: _priv,
    ...rest
  } = jwk as JWK & {
    oth?: unknown;
    priv?: unknown;
  };
  return rest;
}

/**
 * Reads `keysDir/idp-signing-keys.json`, creating it with a fresh `alg` key when it does not exist.
 * Keys of another algorithm are refused: the IdP would announce one algorithm and sign with another.
 */
export async function loadOrCreateSigningKeys(
  keysDir: string,
  alg: 'RS256' | 'ES256' | 'PS256' = 'RS256',
): Promise<PrivateJwks> {
  const file = join(keysDir, SIGNING_KEYS_FILE);
  const parsed = await readJson(file);
  if (parsed !== undefined) {
    if (!isJwks(parsed) || parsed.keys.length === 0) {
      throw new TypeError(
        `${file} is not a JWKS with at least one private key; delete it to generate a new one`,
      );
    }
    const other = parsed.keys.find((k) => k.alg !== undefined && k.alg !== alg);
    if (other) {
      throw new TypeError(
        `${file} holds ${String(other.alg)} keys but signingAlg is ${alg}; use signingAlg ${String(other.alg)}, another folder, or delete the file`,
      );
    }
    return parsed;
  }
  const jwks = { keys: [await generateSigningJwk(alg)] };
  await saveSigningKeys(keysDir, jwks);
  return jwks;
}

/**
 * Reads `dataDir/idp-cookie-keys.json`, creating it with a fresh random key when it does not exist.
 * Kept so that a restarted IdP still accepts the session cookies browsers hold.
 */
export async function loadOrCreateCookieKeys(dataDir: string): Promise<string[]> {
  const file = join(dataDir, COOKIE_KEYS_FILE);
  const parsed = await readJson(file);
  if (parsed !== undefined) {
    if (
      !Array.isArray(parsed) ||
      parsed.length === 0 ||
      !parsed.every((k) => typeof k === 'string' && k.length >= 32)
    ) {
      throw new TypeError(`${file} is not a list of cookie keys; delete it to generate a new one`);
    }
    return parsed as string[];
  }
  const keys = [randomBytes(32).toString('base64url')];
  await writeAtomically(file, keys);
  return keys;
}

async function readJson(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new TypeError(`${file} is not JSON; delete it to generate a new one`);
  }
}

/** Writes JSON to a temp file, then renames it: a crash leaves the old file or the new one. */
async function writeAtomically(file: string, value: unknown): Promise<void> {
  // Private keys live here: a folder created for them is the owner's only.
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(value, null, 2)}\n`, { mode: 0o600 });
  await rename(tmp, file);
}

/** Writes the private JWKS atomically, readable by the owner only. */
export async function saveSigningKeys(keysDir: string, jwks: PrivateJwks): Promise<void> {
  await writeAtomically(join(keysDir, SIGNING_KEYS_FILE), jwks);
}

export function isJwks(value: unknown): value is PrivateJwks {
  return (
    typeof value === 'object' &&
    value !== null &&
    Array.isArray((value as { keys?: unknown }).keys) &&
    (value as { keys: unknown[] }).keys.every((k) => typeof k === 'object' && k !== null && 'kty' in k)
  );
}
