// Server nonces for DPoP proofs (RFC 9449 §8, §9), one per server origin: the latest `DPoP-Nonce` an
// authorization server or a resource server sent. Shared by every session of a BFF instance, so after
// one round trip no other call to that server pays the `use_dpop_nonce` retry again.

/** RFC 9449 §8.1: `nonce = 1*NQCHAR`; bounded, so a hostile server cannot grow every proof. */
const NONCE = /^[\x21\x23-\x5B\x5D-\x7E]{1,512}$/;
/** Origins remembered; the least recently told is forgotten beyond this. */
const MAX_ORIGINS = 256;

/** The latest nonce per server origin. */
export interface NonceCache {
  get(origin: string): string | undefined;
  /** Remembers `nonce` for `origin` when it is a valid nonce (anything else is ignored). */
  set(origin: string, nonce: string): void;
}

export function createNonceCache(): NonceCache {
  const nonces = new Map<string, string>();
  return {
    get: (origin) => nonces.get(origin),
    set(origin, nonce) {
      if (!NONCE.test(nonce) || nonces.get(origin) === nonce) return;
      nonces.delete(origin);
      if (nonces.size >= MAX_ORIGINS) {
        const oldest = nonces.keys().next();
        if (!oldest.done) nonces.delete(oldest.value);
      }
      nonces.set(origin, nonce);
    },
  };
}
