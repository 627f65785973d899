// A client's configured private key (a JWK, a CryptoKey or openid-client's { key, kid }) as
// openid-client's private_key_jwt client authentication takes it.
import type * as oidc from 'openid-client';
import type { ResolvedClient } from './client-config.js';
import type { PrivateJwk } from './types.js';

type CryptoKey = oidc.CryptoKey;

/** Web Crypto import parameters for a private JWK, from its `kty`/`crv`/`alg`. */
function importParams(jwk: PrivateJwk): { name: string; hash?: string; namedCurve?: string } {
  const alg = typeof jwk.alg === 'string' ? jwk.alg : undefined;
  switch (jwk.kty) {
    case 'RSA': {
      const bits = alg?.slice(2) ?? '256';
      return { name: alg?.startsWith('PS') ? 'RSA-PSS' : 'RSASSA-PKCS1-v1_5', hash: `SHA-${bits}` };
    }
    case 'EC':
      return { name: 'ECDSA', namedCurve: typeof jwk.crv === 'string' ? jwk.crv : 'P-256' };
    case 'OKP':
      return { name: 'Ed25519' };
    default:
      throw new TypeError(
        `createTokenManager: unsupported private JWK kty ${JSON.stringify(jwk.kty)} (use RSA, EC or OKP)`,
      );
  }
}

/** Imports a private JWK into Web Crypto (non-extractable, sign only); passes keys through. */
export async function toPrivateKey(
  input: NonNullable<ResolvedClient['privateKey']>,
): Promise<oidc.PrivateKey> {
  if ('kty' in input && typeof input.kty === 'string') {
    const jwk = input as PrivateJwk;
    const { kid, ...material } = jwk;
    const key = await crypto.subtle.importKey('jwk', material, importParams(jwk), false, ['sign']);
    return kid === undefined ? { key } : { key, kid };
  }
  if ('key' in input && typeof input.key === 'object') return input as oidc.PrivateKey;
  return { key: input as CryptoKey };
}
