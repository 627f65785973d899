/** Minimal structured logger (pino-compatible). The default is silent. Never pass tokens or secrets. */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** Who a token speaks for: a user (code flow) or a client acting for itself (client credentials). */
export type TokenKind = 'user' | 'client';

/**
 * The claims of a validated access token. JWT access tokens always carry every RFC 9068 §2.2
 * claim (`iss`, `exp`, `aud`, `sub`, `client_id`, `iat`, `jti`); introspected tokens carry what
 * the introspection response had, with `sub` defaulting to `client_id` and `iss` to the issuer.
 *
 * @see https://www.rfc-editor.org/rfc/rfc9068#section-2.2
 */
export interface AccessTokenClaims {
  readonly iss: string;
  readonly sub: string;
  readonly aud: string | readonly string[];
  /** Expiry, seconds since the epoch. */
  readonly exp: number;
  readonly client_id: string;
  /** Issued-at, seconds since the epoch (always present in JWTs). */
  readonly iat?: number;
  /** Token id (always present in JWTs). */
  readonly jti?: string;
  /** Space-delimited scopes; see {@link AccessTokenAuth.scopes} for the parsed list. */
  readonly scope?: string;
  readonly auth_time?: number;
  readonly acr?: string;
  readonly amr?: readonly string[];
  readonly [claim: string]: unknown;
}

/** What a successful validation yields (and what `requireAccessToken` puts on `req.auth`). */
export interface AccessTokenAuth {
  /** `user` or `client`, decided by the validator's `tokenKind` rule. */
  readonly kind: TokenKind;
  readonly claims: AccessTokenClaims;
  /** The `scope` claim split on spaces. */
  readonly scopes: readonly string[];
  /** How the token was validated: a local JWT check or an RFC 7662 introspection call. */
  readonly source: 'jwt' | 'introspection';
  /**
   * Present when the request proved possession of the token's DPoP key (RFC 9449): the key's
   * thumbprint, equal to the token's `cnf.jkt`. Absent for Bearer requests.
   */
  readonly dpop?: { readonly jkt: string };
}
