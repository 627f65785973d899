// DPoP proof checks of RFC 9449 §4.3 at a resource server (§7.1): one proof header, `typ`, `alg`,
// signature with the embedded public `jwk`, `htm`, `htu` (from configuration), `iat`, `ath`, the
// server nonce. The token binding (`cnf.jkt`) and the `jti` replay cache are applied by the
// validator once the access token itself is valid.
import { createHash } from 'node:crypto';
import {
  calculateJwkThumbprint,
  EmbeddedJWK,
  errors,
  type FlattenedJWSInput,
  type JWK,
  type JWSHeaderParameters,
  type JWTPayload,
  type JWTVerifyOptions,
  jwtVerify,
} from 'jose';
import { LRUCache } from 'lru-cache';
import type { ResolvedConfig } from './config.js';
import type { ResolvedDPoP } from './dpop-config.js';
import { AccessTokenError } from './errors.js';
import type { NonceSource } from './nonce.js';

/** The parts of an HTTP request a DPoP proof is checked against, in any framework. */
export interface DPoPRequest {
  /**
   * The `DPoP` header as received: a string (Node joins repeated headers with `", "`, which a proof
   * never contains) or one entry per header line.
   */
  readonly proof: string | readonly string[] | undefined;
  /** The request method, e.g. `GET` (compared exactly with `htm`). */
  readonly method: string;
  /**
   * The request target, e.g. `req.originalUrl`. Only its path is used: the expected `htu` is the
   * configured `publicUrl` plus this path, never anything from `Host` or `X-Forwarded-*`.
   */
  readonly url: string;
}

/** A proof that passed every check that does not need the validated token. */
export interface CheckedProof {
  /** RFC 7638 SHA-256 thumbprint of the proof key; must equal the token's `cnf.jkt`. */
  readonly jkt: string;
  /** Replay-cache key for this proof (a hash of the key thumbprint and `jti`). */
  readonly replayKey: string;
  /** Seconds the replay mark must live: until the proof's `iat` window closes. */
  readonly ttl: number;
}

/** JWK members that carry private (or symmetric) key material (RFC 7518 §6). */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;

/** Proofs are small (a header with one public key and five claims); anything larger is refused unparsed. */
const MAX_PROOF_LENGTH = 4096;

/** Distinct proof headers (one per client key, as a client reuses its key) remembered per validator. */
const KEY_MEMO_LIMIT = 1000;

type ProofKey = Awaited<ReturnType<typeof EmbeddedJWK>>;

function invalidProof(description: string, cause?: unknown): AccessTokenError {
  return new AccessTokenError('ERR_API_AUTH_INVALID_DPOP_PROOF', description, { cause });
}

/** jose's verdicts on a proof, as fixed descriptions that never echo the proof. */
function fromJose(cause: unknown): AccessTokenError {
  if (cause instanceof AccessTokenError) return cause;
  if (cause instanceof errors.JOSEAlgNotAllowed) {
    return invalidProof('the DPoP proof alg is not allowed (asymmetric algorithms only, see algs)', cause);
  }
  if (cause instanceof errors.JWTClaimValidationFailed) {
    if (cause.claim === 'typ') return invalidProof('the DPoP proof typ must be dpop+jwt', cause);
    return invalidProof(`the DPoP proof has an invalid ${cause.claim} claim`, cause);
  }
  if (cause instanceof errors.JWTExpired) return invalidProof('the DPoP proof expired', cause);
  if (cause instanceof errors.JWSSignatureVerificationFailed) {
    return invalidProof('the DPoP proof signature is invalid', cause);
  }
  if (cause instanceof errors.JWSInvalid && /jwk|JWK/.test(cause.message)) {
    return invalidProof('the DPoP proof jwk header is not a usable public key', cause);
  }
  if (cause instanceof errors.JOSEError) return invalidProof('the DPoP proof is malformed', cause);
  // importJWK's TypeErrors (a key that does not fit its alg) and the like.
  return invalidProof('the DPoP proof key does not fit its alg', cause);
}

/** RFC 9449 §4.3 check 1: exactly one `DPoP` header holding one JWT. */
function singleProof(value: DPoPRequest['proof']): string {
  let proof: unknown = value;
  if (Array.isArray(value)) {
    if (value.length > 1) throw invalidProof('send exactly one DPoP header');
    proof = value[0];
  }
  if (proof === undefined || proof === '') {
    throw invalidProof('the DPoP scheme needs a DPoP proof header');
  }
  if (typeof proof !== 'string') throw invalidProof('the DPoP header is malformed');
  // A JWT never holds a comma or whitespace: either means several headers or garbage.
  if (/[,\s]/.test(proof)) throw invalidProof('send exactly one DPoP header');
  if (proof.length > MAX_PROOF_LENGTH) throw invalidProof('the DPoP proof is too long');
  return proof;
}

/** The path of a request target: origin-form up to `?`/`#`, or the path of an absolute-form target. */
function targetPath(target: string): string | undefined {
  if (typeof target !== 'string') return undefined;
  if (target.startsWith('/')) {
    const end = target.search(/[?#]/);
    return end === -1 ? target : target.slice(0, end);
  }
  // Absolute-form (RFC 9112 §3.2.2): its authority is the client's choice, so only the path counts.
  if (/^https?:\/\//i.test(target)) {
    try {
      return new URL(target).pathname;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/** `origin + path` after WHATWG URL normalization (case, default port, dot segments); no query or fragment. */
function normalizedHttpUrl(text: string): string | undefined {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return undefined;
  return `${url.origin}${url.pathname}`;
}

/**
 * The `htu` a proof for this request must carry: the configured public URL plus the request path.
 * Built by concatenation before parsing, so a path like `//evil.example/x` stays a path.
 */
export function expectedHtu(dpop: ResolvedDPoP, target: string): string | undefined {
  const path = targetPath(target);
  return path === undefined ? undefined : normalizedHttpUrl(`${dpop.origin}${dpop.basePath}${path}`);
}

/** RFC 9449 §4.2 `ath`: base64url of the SHA-256 of the access token's ASCII octets. */
export function accessTokenHash(token: string): string {
  return createHash('sha256').update(token, 'ascii').digest('base64url');
}

/**
 * Builds the proof checker for one validator. Everything configurable is fixed here; per proof it
 * verifies one signature and reads a handful of claims.
 */
export function createProofChecker(
  config: ResolvedConfig,
  dpop: ResolvedDPoP,
  now: () => number,
  nonces: NonceSource | undefined,
): (token: string, request: DPoPRequest) => Promise<CheckedProof> {
  const toleranceMs = config.clockTolerance * 1000;
  const lifetimeMs = dpop.proofLifetime * 1000;
  const verifyOptions: JWTVerifyOptions = Object.freeze({
    typ: 'dpop+jwt',
    algorithms: dpop.algorithms as string[],
  });

  const checkClaims = (payload: JWTPayload, token: string, request: DPoPRequest): number => {
    const { jti, htm, htu, iat, ath, nonce } = payload;
    if (typeof jti !== 'string' || jti.length === 0 || jti.length > 512) {
      throw invalidProof('the DPoP proof has no valid jti');
    }
    if (typeof htm !== 'string' || htm !== request.method) {
      throw invalidProof('the DPoP proof htm does not match the request method');
    }
    if (typeof htu !== 'string') throw invalidProof('the DPoP proof has no htu');
    const expected = expectedHtu(dpop, request.url);
    if (expected === undefined || normalizedHttpUrl(htu) !== expected) {
      throw invalidProof('the DPoP proof htu does not match the URL of this resource');
    }
    if (typeof iat !== 'number' || !Number.isFinite(iat))
      throw invalidProof('the DPoP proof has no valid iat');
    const at = now();
    if (iat * 1000 > at + toleranceMs) throw invalidProof('the DPoP proof is issued in the future (iat)');
    if (iat * 1000 < at - lifetimeMs - toleranceMs) throw invalidProof('the DPoP proof is too old (iat)');
    if (ath === undefined) throw invalidProof('the DPoP proof lacks ath (the access token hash)');
    if (typeof ath !== 'string' || ath !== accessTokenHash(token)) {
      throw invalidProof('the DPoP proof ath does not match the access token');
    }
    // §9: a missing, unknown or expired nonce all get use_dpop_nonce with a fresh one.
    if (nonces && (typeof nonce !== 'string' || !nonces.check(nonce))) {
      throw new AccessTokenError(
        'ERR_API_AUTH_USE_DPOP_NONCE',
        'the resource server requires a current nonce in the DPoP proof',
      );
    }
    return (iat * 1000 + lifetimeMs + toleranceMs - at) / 1000;
  };

  // A client signs every proof with the same key, so the encoded protected header ({alg, typ, jwk})
  // repeats: remember the imported key and its thumbprint per header instead of importing the JWK
  // and hashing it on each request. Same header, same key: the checks below are unchanged.
  const memo = new LRUCache<string, { key: ProofKey; jkt: string }>({ max: KEY_MEMO_LIMIT });

  return async (token, request) => {
    const proof = singleProof(request.proof);
    const encodedHeader = proof.slice(0, proof.indexOf('.'));
    const known = memo.get(encodedHeader);
    let jwk: JWK | undefined;
    // jose has checked the alg against the allowlist before it asks for the key.
    const getKey = (header: JWSHeaderParameters, input: FlattenedJWSInput) => {
      const candidate: unknown = header.jwk;
      if (typeof candidate !== 'object' || candidate === null || Array.isArray(candidate)) {
        throw invalidProof('the DPoP proof has no jwk header');
      }
      for (const member of PRIVATE_MEMBERS) {
        if (Object.hasOwn(candidate, member)) {
          throw invalidProof('the DPoP proof jwk must be a public key (it holds private key material)');
        }
      }
      jwk = candidate as JWK;
      return EmbeddedJWK(header, input);
    };
    const options = config.clock ? { ...verifyOptions, currentDate: new Date(now()) } : verifyOptions;
    let payload: JWTPayload;
    let key: ProofKey | undefined;
    try {
      // jose checks the alg allowlist and typ on both paths; with a known header the key is reused.
      if (known) ({ payload } = await jwtVerify(proof, known.key, options));
      else ({ payload, key } = await jwtVerify(proof, getKey, options));
    } catch (cause) {
      throw fromJose(cause);
    }
    const ttl = checkClaims(payload, token, request);
    let jkt: string;
    if (known) jkt = known.jkt;
    else {
      jkt = await calculateJwkThumbprint(jwk as JWK, 'sha256');
      if (key !== undefined) memo.set(encodedHeader, { key, jkt });
    }
    const replayKey = createHash('sha256')
      .update(`${jkt}\u0000${payload.jti as string}`)
      .digest('base64url');
    return { jkt, replayKey, ttl: Math.max(ttl, 1) };
  };
}
