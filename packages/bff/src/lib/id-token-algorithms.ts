// The JWS algorithms the BFF accepts from the OP at all: a leaf, read by the option checks (config.ts)
// and by the signature policy (id-token.ts).

/** Asymmetric JWS algorithms accepted for ID tokens and logout tokens (never `none`, never HS*). */
export const ID_TOKEN_ALGORITHMS: readonly string[] = Object.freeze([
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
