// DPoP on proxied calls (RFC 9449 §7, §9; SECURITY D1): a call with a DPoP-bound user token carries
// `Authorization: DPoP <token>` and a proof naming the *upstream* URL (`htu`), the method, a fresh `jti`
// and the token's hash (`ath`); each upstream origin's latest `DPoP-Nonce` goes into the proofs. An
// upstream that answers 401 `use_dpop_nonce` gets the call once more with its nonce, when the call can
// be sent again: no body, or a small one read first (REPLAY_LIMIT). A larger or chunked body streams
// through as it arrives and is never held in memory; such a call answers 503
// `ERR_BFF_UPSTREAM_DPOP_NONCE` (the nonce is remembered now, so sending it again works).
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { NonceCache } from '../dpop/nonces.js';

/**
 * Largest request body (bytes, by `Content-Length`) read before a DPoP-bound call is sent, so the call
 * can be sent again with a nonce: a typical JSON write. Larger or chunked bodies stream.
 */
export const REPLAY_LIMIT = 64 * 1024;

/** What the proxy needs of a session's DPoP key. */
export interface ProofSigner {
  proof(htm: string, htu: string, accessToken: string, nonce: string | undefined): string;
  /** The same proof, signed off the event loop. */
  proofAsync(htm: string, htu: string, accessToken: string, nonce: string | undefined): Promise<string>;
}

/** A call whose user token is DPoP-bound. */
export interface SenderBinding {
  readonly signer: ProofSigner;
  /** The upstream origin: nonces are kept per origin. */
  readonly origin: string;
  /** The upstream URL without the query (`htu`, RFC 9449 §4.2). */
  readonly htu: string;
  /** The access token the proofs are bound to (`ath`). */
  readonly token: string;
}

/**
 * The binding of a call to `origin` + `upstreamPath` (which may carry a query); undefined without a
 * signer (the token is not DPoP-bound) or without a token.
 */
export function bindSender(
  signer: ProofSigner | undefined,
  origin: string,
  upstreamPath: string,
  token: string | undefined,
): SenderBinding | undefined {
  if (signer === undefined || token === undefined) return undefined;
  const query = upstreamPath.indexOf('?');
  return { signer, origin, htu: origin + (query < 0 ? upstreamPath : upstreamPath.slice(0, query)), token };
}

/** Sets `Authorization: DPoP` and a fresh proof (new `jti`, the origin's current nonce). */
export function authorizeBound(
  headers: IncomingHttpHeaders,
  binding: SenderBinding,
  method: string,
  nonces: NonceCache,
): void {
  headers.authorization = `DPoP ${binding.token}`;
  headers.dpop = binding.signer.proof(method, binding.htu, binding.token, nonces.get(binding.origin));
}

/**
 * The same, with the proof signed off the event loop (DpopKey.proofAsync): what the first send of every
 * bound call uses. Retries after a nonce or token challenge and WebSocket handshakes are rare and sign
 * in place.
 */
export async function authorizeBoundAsync(
  headers: IncomingHttpHeaders,
  binding: SenderBinding,
  method: string,
  nonces: NonceCache,
): Promise<void> {
  headers.authorization = `DPoP ${binding.token}`;
  headers.dpop = await binding.signer.proofAsync(
    method,
    binding.htu,
    binding.token,
    nonces.get(binding.origin),
  );
}

/** RFC 9449 §9: a `WWW-Authenticate: DPoP … error="use_dpop_nonce"` challenge. */
export function isNonceChallenge(header: string | string[] | undefined): boolean {
  if (header === undefined) return false;
  const values = Array.isArray(header) ? header : [header];
  return values.some((value) => /\bdpop\b[\s\S]*\berror\s*=\s*"?use_dpop_nonce"?/i.test(value));
}

/**
 * The body a bound call can send again after `use_dpop_nonce`: null (it has none), the bytes of a small
 * one (read now), or undefined (chunked or larger than REPLAY_LIMIT: it streams, no second send).
 * Rejects when the browser goes away before the end of the body.
 */
export async function replayableBody(
  req: IncomingMessage,
  hasBody: boolean,
  chunked: boolean,
): Promise<Buffer | null | undefined> {
  if (!hasBody) return null;
  if (chunked || !(Number(req.headers['content-length']) <= REPLAY_LIMIT)) return undefined;
  return readBody(req);
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const fail = () => reject(new Error('request body not received'));
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      // Node's parser stops at Content-Length; this only guards against a bug elsewhere.
      if (size > REPLAY_LIMIT) {
        req.destroy();
        fail();
        return;
      }
      chunks.push(chunk);
    });
    req.once('end', () => resolve(Buffer.concat(chunks, size)));
    req.once('error', fail);
    req.once('close', () => {
      if (!req.readableEnded) fail();
    });
  });
}
