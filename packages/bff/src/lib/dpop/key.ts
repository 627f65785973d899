// A session's DPoP key (RFC 9449, SECURITY D1): generated at sign-in, kept only as a private JWK inside
// the sealed token record, and turned into a signer once per session (the decrypted-record cache keeps
// it). A proof then costs one signature: the protected header is encoded once, `ath` is hashed once per
// access token, nothing is exported per call. openid-client gets the same key as a Web Crypto pair for
// the token and UserInfo requests.
import {
  createHash,
  createPrivateKey,
  generateKeyPairSync,
  type KeyObject,
  randomUUID,
  sign,
  webcrypto,
} from 'node:crypto';
import { BffError } from '../errors.js';

/** Proof algorithms a session key can use: fast key generation, small signatures. */
export const DPOP_ALGORITHMS = ['ES256', 'ES384', 'Ed25519'] as const;
/** A DPoP proof algorithm of the session keys: `ES256`, `ES384` or `Ed25519`. */
export type DpopAlgorithm = (typeof DPOP_ALGORITHMS)[number];

/** The private JWK members a session key is stored as (sealed with the tokens, never sent anywhere). */
export interface DpopPrivateJwk {
  readonly kty: 'EC' | 'OKP';
  readonly crv: string;
  readonly x: string;
  readonly y?: string;
  readonly d: string;
}

interface Curve {
  readonly kty: 'EC' | 'OKP';
  readonly crv: string;
  /** Node's digest for `crypto.sign`; null for EdDSA (the curve hashes itself). */
  readonly digest: 'sha256' | 'sha384' | null;
  /** Web Crypto import parameters (for openid-client). */
  readonly webCrypto: { name: string; namedCurve?: string };
  generate(): KeyObject;
}

const CURVES: Readonly<Record<DpopAlgorithm, Curve>> = Object.freeze({
  ES256: {
    kty: 'EC',
    crv: 'P-256',
    digest: 'sha256',
    webCrypto: { name: 'ECDSA', namedCurve: 'P-256' },
    generate: () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey,
  },
  ES384: {
    kty: 'EC',
    crv: 'P-384',
    digest: 'sha384',
    webCrypto: { name: 'ECDSA', namedCurve: 'P-384' },
    generate: () => generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey,
  },
  Ed25519: {
    kty: 'OKP',
    crv: 'Ed25519',
    digest: null,
    webCrypto: { name: 'Ed25519' },
    generate: () => generateKeyPairSync('ed25519').privateKey,
  },
});

const algorithmOf = (jwk: DpopPrivateJwk): DpopAlgorithm | undefined =>
  DPOP_ALGORITHMS.find((alg) => CURVES[alg].kty === jwk.kty && CURVES[alg].crv === jwk.crv);

const b64u = (value: string | Buffer) => Buffer.from(value).toString('base64url');
const sha256 = (value: string) => createHash('sha256').update(value).digest('base64url');

/** RFC 7638 JWK thumbprint (SHA-256): the `jkt` a bound token's `cnf` names. */
export function jwkThumbprint(jwk: { kty: string; crv: string; x: string; y?: string | undefined }): string {
  return sha256(
    jwk.kty === 'EC'
      ? `{"crv":"${jwk.crv}","kty":"EC","x":"${jwk.x}","y":"${jwk.y}"}`
      : `{"crv":"${jwk.crv}","kty":"${jwk.kty}","x":"${jwk.x}"}`,
  );
}

/**
 * A session's DPoP key, ready to sign. Only `jkt` and `alg` are visible: the private key lives in
 * `#` fields, so neither `JSON.stringify`, `util.inspect` nor a logger can print it.
 */
export class DpopKey {
  /** RFC 7638 thumbprint of the public key (`cnf.jkt` of the bound tokens). Public, not secret. */
  readonly jkt: string;
  readonly alg: DpopAlgorithm;
  readonly #jwk: DpopPrivateJwk;
  readonly #digest: Curve['digest'];
  /** `base64url(protected header) + '.'`, encoded once. */
  readonly #head: string;
  /** `crypto.sign` options, built once: JWS wants the raw r||s form, not DER. */
  readonly #signOptions: { key: KeyObject; dsaEncoding: 'ieee-p1363' };
  #pair: Promise<webcrypto.CryptoKeyPair> | undefined;
  #lastToken = '';
  #lastAth = '';

  private constructor(jwk: DpopPrivateJwk, alg: DpopAlgorithm, key: KeyObject) {
    const { d: _private, ...publicJwk } = jwk;
    this.alg = alg;
    this.jkt = jwkThumbprint(publicJwk);
    this.#jwk = jwk;
    this.#signOptions = { key, dsaEncoding: 'ieee-p1363' };
    this.#digest = CURVES[alg].digest;
    this.#head = `${b64u(JSON.stringify({ typ: 'dpop+jwt', alg, jwk: publicJwk }))}.`;
  }

  /** A new random key pair for one session. */
  static generate(alg: DpopAlgorithm): DpopKey {
    const key = CURVES[alg].generate();
    const { kty, crv, x, y, d } = key.export({ format: 'jwk' });
    const jwk: DpopPrivateJwk = {
      kty: kty as DpopPrivateJwk['kty'],
      crv: String(crv),
      x: String(x),
      ...(y !== undefined ? { y } : {}),
      d: String(d),
    };
    return new DpopKey(jwk, alg, key);
  }

  /** The key of a stored record. Throws BffError (500) for a JWK no session key can be. */
  static fromJwk(jwk: DpopPrivateJwk): DpopKey {
    const alg = typeof jwk === 'object' && jwk !== null ? algorithmOf(jwk) : undefined;
    if (alg === undefined || typeof jwk.d !== 'string' || typeof jwk.x !== 'string') {
      throw new BffError('ERR_BFF_INTERNAL', 'stored DPoP key is not a supported private JWK');
    }
    return new DpopKey(jwk, alg, createPrivateKey({ key: { ...jwk }, format: 'jwk' }));
  }

  /** The private JWK, for the sealed token record only. */
  toPrivateJwk(): DpopPrivateJwk {
    return this.#jwk;
  }

  /** What serialising the key shows: the thumbprint, never key material. */
  toJSON(): { jkt: string; alg: DpopAlgorithm } {
    return { jkt: this.jkt, alg: this.alg };
  }

  /**
   * A DPoP proof JWT (RFC 9449 §4.2): `htm`, `htu` (no query or fragment), a fresh `jti`, `iat` now,
   * `ath` when an access token goes with it (§7.1), and the server's `nonce` when it sent one (§8, §9).
   */
  proof(htm: string, htu: string, accessToken?: string, nonce?: string): string {
    const input = this.#signingInput(htm, htu, accessToken, nonce);
    return `${input}.${sign(this.#digest, Buffer.from(input), this.#signOptions).toString('base64url')}`;
  }

  /**
   * The same proof, signed on libuv's thread pool. The signature is most of a proof's cost (about
   * 20 µs for ES256 against about 40 µs for a whole proxied call without DPoP): signed in the event
   * loop, a DPoP-bound proxy ran at 0.65× the rate of the same proxy without DPoP; signed here, 0.77×
   * (`BENCH_ONLY=proxy npm run bench`). The CPU per call stays the same; the event loop is freed.
   */
  proofAsync(htm: string, htu: string, accessToken?: string, nonce?: string): Promise<string> {
    const input = this.#signingInput(htm, htu, accessToken, nonce);
    return new Promise((resolve, reject) => {
      sign(this.#digest, Buffer.from(input), this.#signOptions, (err, signature) => {
        if (err) reject(err);
        else resolve(`${input}.${signature.toString('base64url')}`);
      });
    });
  }

  /** `base64url(header).base64url(payload)` of a new proof. */
  #signingInput(
    htm: string,
    htu: string,
    accessToken: string | undefined,
    nonce: string | undefined,
  ): string {
    let payload = `{"jti":"${randomUUID()}","htm":${JSON.stringify(htm)},"htu":${JSON.stringify(htu)},"iat":${Math.floor(Date.now() / 1000)}`;
    if (accessToken !== undefined) {
      if (accessToken !== this.#lastToken) {
        this.#lastAth = sha256(accessToken);
        this.#lastToken = accessToken;
      }
      payload += `,"ath":"${this.#lastAth}"`;
    }
    if (nonce !== undefined) payload += `,"nonce":${JSON.stringify(nonce)}`;
    return this.#head + b64u(`${payload}}`);
  }

  /**
   * The same key as a Web Crypto pair (private half not extractable), imported once: what
   * openid-client's DPoP handle signs the token and UserInfo requests with.
   */
  keyPair(): Promise<webcrypto.CryptoKeyPair> {
    this.#pair ??= (async () => {
      const algorithm = CURVES[this.alg].webCrypto;
      const { d: _private, ...publicJwk } = this.#jwk;
      const [privateKey, publicKey] = await Promise.all([
        webcrypto.subtle.importKey('jwk', { ...this.#jwk }, algorithm, false, ['sign']),
        webcrypto.subtle.importKey('jwk', publicJwk, algorithm, true, ['verify']),
      ]);
      return { privateKey, publicKey };
    })();
    return this.#pair;
  }
}
