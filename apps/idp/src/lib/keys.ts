import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';

/** A private JWKS as oidc-provider's `jwks` option expects it. */
export interface PrivateJwks {
  keys: JWK[];
}

/** File (inside `keysDir`) that keeps the IdP's private signing keys between restarts. */
export const SIGNING_KEYS_FILE = 'idp-signing-keys.json';

/** Generates an RS256 signing key as a private JWK with `kid` (its thumbprint), `alg` and `use`. */
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

/** Reads `keysDir/idp-signing-keys.json`, creating it with a fresh key when it does not exist. */
export async function loadOrCreateSigningKeys(keysDir: string): Promise<PrivateJwks> {
  const file = join(keysDir, SIGNING_KEYS_FILE);
  try {
    const parsed = JSON.parse(await readFile(file, 'utf8')) as unknown;
    if (!isJwks(parsed) || parsed.keys.length === 0) {
      throw new TypeError(
        `${file} is not a JWKS with at least one private key; delete it to generate a new one`,
      );
    }
    return parsed;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const jwks = { keys: [await generateSigningJwk()] };
  await saveSigningKeys(keysDir, jwks);
  return jwks;
}

/** Writes the private JWKS atomically, readable by the owner only. */
export async function saveSigningKeys(keysDir: string, jwks: PrivateJwks): Promise<void> {
  await mkdir(keysDir, { recursive: true });
  const file = join(keysDir, SIGNING_KEYS_FILE);
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(jwks, null, 2)}\n`, { mode: 0o600 });
  await rename(tmp, file);
}

export function isJwks(value: unknown): value is PrivateJwks {
  return (
    typeof value === 'object' &&
    value !== null &&
    Array.isArray((value as { keys?: unknown }).keys) &&
    (value as { keys: unknown[] }).keys.every((k) => typeof k === 'object' && k !== null && 'kty' in k)
  );
}
