// DPoP (RFC 9449): a client's proof-of-possession key, resolved once at creation (so its thumbprint
// can be part of the cache key from the first call), and the proofs signed with it. The protected
// header (with the public JWK) is built once; a proof costs one signature, never a key export.
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type JsonWebKey,
  KeyObject,
  randomBytes,
} from 'node:crypto';
import { importJWK, SignJWT } from 'jose';
import { LRUCache } from 'lru-cache';
import type { CryptoKey } from 'openid-client';
import type { DpopAlgorithm, DpopGenerateAlgorithm, DpopKey, PrivateJwk } from './types.js';

/** A validated DPoP key (no signing state yet). */
export interface ResolvedDpop {
  readonly alg: DpopAlgorithm;
  readonly thumbprint: string;
  readonly publicJwk: Readonly<Record<string, string>>;
  /** What the signing key is imported from, once, on first use. */
  readonly source: { readonly cryptoKey: CryptoKey } | { readonly keyObject: KeyObject };
}

const GENERATE: Record<DpopGenerateAlgorithm, () => KeyObject> = {
  ES256: () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey,
  ES384: () => generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey,
  ES512: () => generateKeyPairSync('ec', { namedCurve: 'P-521' }).privateKey,
  Ed25519: () => generateKeyPairSync('ed25519').privateKey,
  EdDSA: () => generateKeyPairSync('ed25519').privateKey,
};

const EC_ALG: Record<string, DpopAlgorithm> = {
  prime256v1: 'ES256',
  'P-256': 'ES256',
  secp384r1: 'ES384',
  'P-384': 'ES384',
  secp521r1: 'ES512',
  'P-521': 'ES512',
};

/** The algorithms a key can sign with, the default first. */
function algorithmsOf(keyObject: KeyObject, cryptoKey: CryptoKey | undefined): DpopAlgorithm[] {
  if (cryptoKey) {
    // A CryptoKey is bound to one algorithm (and hash) at import; only that one can work.
    const algorithm = cryptoKey.algorithm as { name: string; namedCurve?: string; hash?: { name: string } };
    const bits = algorithm.hash?.name.replace('SHA-', '');
    switch (algorithm.name) {
      case 'ECDSA': {
        const alg = EC_ALG[algorithm.namedCurve ?? ''];
        return alg ? [alg] : [];
      }
      case 'Ed25519':
        return ['EdDSA', 'Ed25519'];
      case 'RSASSA-PKCS1-v1_5':
        return [`RS${bits}` as DpopAlgorithm];
      case 'RSA-PSS':
        return [`PS${bits}` as DpopAlgorithm];
      default:
        return [];
    }
  }
  switch (keyObject.asymmetricKeyType) {
    case 'ec': {
      const alg = EC_ALG[keyObject.asymmetricKeyDetails?.namedCurve ?? ''];
      return alg ? [alg] : [];
    }
    case 'ed25519':
      return ['EdDSA', 'Ed25519'];
    case 'rsa':
      return ['PS256', 'PS384', 'PS512', 'RS256', 'RS384', 'RS512'];
    case 'rsa-pss':
      return ['PS256', 'PS384', 'PS512'];
    default:
      return [];
  }
}

/** RFC 7638: SHA-256 over the required members in lexicographic order, no whitespace. */
export function jwkThumbprint(jwk: Readonly<Record<string, unknown>>): string {
  const members =
    jwk.kty === 'EC' ? ['crv', 'kty', 'x', 'y'] : jwk.kty === 'OKP' ? ['crv', 'kty', 'x'] : ['e', 'kty', 'n'];
  const canonical = `{${members.map((m) => `${JSON.stringify(m)}:${JSON.stringify(jwk[m])}`).join(',')}}`;
  return createHash('sha256').update(canonical).digest('base64url');
}

/** Web Crypto's `CryptoKey` class (a global since Node 20; not in the TypeScript lib we compile with). */
const CryptoKeyClass = (globalThis as { CryptoKey?: abstract new () => unknown }).CryptoKey;

function isCryptoKey(value: unknown): value is CryptoKey {
  return CryptoKeyClass !== undefined && value instanceof CryptoKeyClass;
}

/**
 * A private key given as `CryptoKey`, `KeyObject` or private JWK, as a `KeyObject` (for its public
 * half). Throws `TypeError(message)` through `fail` for anything that is not a usable private key.
 */
export function privateKeyObject(input: unknown, fail: (message: string) => never, name: string): KeyObject {
  if (input instanceof KeyObject) {
    if (input.type !== 'private') fail(`${name} must be a private key, got a ${input.type} KeyObject`);
    return input;
  }
  if (isCryptoKey(input)) {
    if (input.type !== 'private') fail(`${name} must be a private CryptoKey, got a ${input.type} key`);
    if (!input.usages.includes('sign')) fail(`${name} must be a CryptoKey with the "sign" usage`);
    return KeyObject.from(input);
  }
  if (typeof input === 'object' && input !== null && typeof (input as { kty?: unknown }).kty === 'string') {
    const jwk = input as PrivateJwk;
    if (typeof jwk.d !== 'string') {
      fail(`${name} is a public JWK; pass the private JWK (with "d"), e.g. from jose.exportJWK(privateKey)`);
    }
    try {
      return createPrivateKey({ key: jwk as JsonWebKey, format: 'jwk' });
    } catch (error) {
      fail(`${name} is not a valid private JWK (${error instanceof Error ? error.message : String(error)})`);
    }
  }
  return fail(`${name} must be a private CryptoKey, a KeyObject or a private JWK`);
}

/** The public JWK (members as Node exports them: no `d`, no `kid`) of a private key. */
export function publicJwkOf(key: KeyObject): Record<string, string> {
  return createPublicKey(key).export({ format: 'jwk' }) as Record<string, string>;
}

/** Validates `dpop` once at creation; `fail` throws the manager's TypeError. */
export function resolveDpop(
  raw: unknown,
  fail: (message: string) => never,
  where: string,
): ResolvedDpop | undefined {
  if (raw === undefined) return undefined;
  const name = `${where}dpop`;
  if (typeof raw !== 'object' || raw === null) {
    fail(`${name} must be { generate: 'ES256' } or { privateKey, alg? }`);
  }
  const options = raw as Record<string, unknown>;
  for (const key of Object.keys(options)) {
    if (key !== 'generate' && key !== 'privateKey' && key !== 'alg') {
      fail(`unknown option ${name}.${key}; the known options are generate, privateKey, alg`);
    }
  }
  let keyObject: KeyObject;
  let cryptoKey: CryptoKey | undefined;
  let alg: DpopAlgorithm;
  if ('generate' in options) {
    if ('privateKey' in options || 'alg' in options) {
      fail(`${name} takes either generate or privateKey (with an optional alg), not both`);
    }
    const generate = options.generate as DpopGenerateAlgorithm;
    if (!Object.hasOwn(GENERATE, generate)) {
      fail(
        `${name}.generate must be one of ${Object.keys(GENERATE).join(', ')}, got ${JSON.stringify(generate)}`,
      );
    }
    keyObject = GENERATE[generate]();
    alg = generate;
  } else if ('privateKey' in options) {
    keyObject = privateKeyObject(options.privateKey, fail, `${name}.privateKey`);
    cryptoKey = isCryptoKey(options.privateKey) ? options.privateKey : undefined;
    const allowed = algorithmsOf(keyObject, cryptoKey);
    if (allowed.length === 0) {
      fail(`${name}.privateKey must be an EC (P-256, P-384, P-521), Ed25519 or RSA key`);
    }
    if (keyObject.asymmetricKeyType?.startsWith('rsa')) {
      const bits = keyObject.asymmetricKeyDetails?.modulusLength ?? 0;
      if (bits < 2048) fail(`${name}.privateKey is a ${bits}-bit RSA key; use at least 2048 bits`);
    }
    const requested = options.alg;
    if (requested !== undefined && !allowed.includes(requested as DpopAlgorithm)) {
      fail(`${name}.alg ${JSON.stringify(requested)} does not fit the key; use one of ${allowed.join(', ')}`);
    }
    alg = (requested as DpopAlgorithm | undefined) ?? allowed[0]!;
  } else {
    return fail(`${name} needs generate (e.g. { generate: 'ES256' }) or privateKey`);
  }
  const publicJwk = Object.freeze(publicJwkOf(keyObject));
  return Object.freeze({
    alg,
    publicJwk,
    thumbprint: jwkThumbprint(publicJwk),
    source: Object.freeze(cryptoKey ? { cryptoKey } : { keyObject }),
  });
}

/** `fetch`'s method normalisation: these six are upper-cased, others are sent as given. */
const NORMALIZED_METHODS = new Set(['DELETE', 'GET', 'HEAD', 'OPTIONS', 'POST', 'PUT']);

/** RFC 9449 §8.1: `nonce = 1*NQCHAR`; a bound on length keeps a hostile server from growing proofs. */
const NONCE = /^[\x21\x23-\x5B\x5D-\x7E]{1,512}$/;
/** Servers (origins) whose nonce is remembered; beyond this the least recently used is forgotten. */
const MAX_NONCES = 256;

/** The signing half of a client's DPoP key; one per client per manager. */
export class DpopSigner implements DpopKey {
  readonly alg: DpopAlgorithm;
  readonly thumbprint: string;
  readonly publicJwk: Readonly<Record<string, string>>;
  readonly #header: { typ: 'dpop+jwt'; alg: DpopAlgorithm; jwk: Record<string, string> };
  readonly #source: ResolvedDpop['source'];
  #key: Promise<CryptoKey> | undefined;
  readonly #nonces = new LRUCache<string, string>({ max: MAX_NONCES });

  constructor(resolved: ResolvedDpop) {
    this.alg = resolved.alg;
    this.thumbprint = resolved.thumbprint;
    this.publicJwk = resolved.publicJwk;
    this.#source = resolved.source;
    this.#header = Object.freeze({ typ: 'dpop+jwt', alg: resolved.alg, jwk: { ...resolved.publicJwk } });
  }

  /** Imports the private key into Web Crypto once (non-extractable); proofs reuse it. */
  #signingKey(): Promise<CryptoKey> {
    this.#key ??= (async () => {
      const source = this.#source;
      if ('cryptoKey' in source) return source.cryptoKey;
      const jwk = source.keyObject.export({ format: 'jwk' });
      return (await importJWK(jwk, this.alg, { extractable: false })) as CryptoKey;
    })().catch((error: unknown) => {
      this.#key = undefined;
      throw error;
    });
    return this.#key;
  }

  async proof(method: string, url: string | URL, accessToken?: string): Promise<string> {
    const target = new URL(url);
    const htm = NORMALIZED_METHODS.has(method.toUpperCase()) ? method.toUpperCase() : method;
    const nonce = this.#nonces.get(target.origin);
    // §4.2: htu is the target URI without query and fragment; credentials never belong in a proof.
    target.search = '';
    target.hash = '';
    target.username = '';
    target.password = '';
    const payload: Record<string, string | number> = {
      jti: randomBytes(16).toString('base64url'),
      htm,
      htu: target.href,
      iat: Math.floor(Date.now() / 1000),
    };
    if (accessToken !== undefined) payload.ath = createHash('sha256').update(accessToken).digest('base64url');
    if (nonce !== undefined) payload.nonce = nonce;
    return new SignJWT(payload).setProtectedHeader(this.#header).sign(await this.#signingKey());
  }

  rememberNonce(url: string | URL, nonce: string): void {
    if (!NONCE.test(nonce)) return;
    this.#nonces.set(new URL(url).origin, nonce);
  }
}
