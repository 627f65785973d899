// What a session is, as a plain value: the JSON the store keeps (parsed once per request, here) and the
// loaded session the request steps pass to each other. Nothing here touches a request or a response.

/** What the BFF keeps in a session (plain JSON; tokens live in the separate encrypted record). */
export interface BffSessionData {
  readonly v: 1;
  readonly iss: string;
  readonly sub: string;
  readonly sid?: string;
  /** Value of the `sid` parameter of `bff:logout_url`: the OP's `sid`, else a random value. */
  readonly logoutId: string;
  readonly claims: Record<string, unknown>;
  readonly sessionState?: string;
  /**
   * Thumbprint (RFC 7638) of the session's DPoP key when its tokens are DPoP-bound (D1): public, the
   * `cnf.jkt` of the tokens; the key itself lives only in the sealed token record.
   */
  readonly jkt?: string;
  /** Epoch seconds. */
  readonly createdAt: number;
  /** Epoch milliseconds of creation: orders one user's sessions for the per-user cap (S6). */
  readonly createdAtMs?: number;
  lastSeenAt: number;
  /** Absolute expiry, epoch seconds. */
  readonly expiresAt: number;
}

/**
 * A loaded, live session: what the session step hands to the token step, the proxy and the endpoints.
 * `tokens` is the encrypted token record as read with the session; the token step replaces it after a
 * refresh so a retry within the same call uses the new record.
 */
export interface LoadedSession {
  readonly id: string;
  readonly data: BffSessionData;
  tokens: string | undefined;
}

/** The parts of the session the proxy and the routes read. Tokens are decrypted only on demand. */
export interface SessionUser {
  /** The session id of the BFF session (never sent anywhere but the cookie). */
  readonly sessionId: string;
  /** Issuer, subject and OP session id from the ID token (index keys for back-channel logout). */
  readonly iss: string;
  readonly sub: string;
  readonly sid?: string;
  /** The user's ID-token and UserInfo claims, as shown by /bff/user. */
  readonly claims: Readonly<Record<string, unknown>>;
}

/** The user of a loaded session, as the public API shows it. */
export function toSessionUser(session: LoadedSession): SessionUser {
  const { data } = session;
  return {
    sessionId: session.id,
    iss: data.iss,
    sub: data.sub,
    ...(data.sid !== undefined ? { sid: data.sid } : {}),
    claims: data.claims,
  };
}

// Sessions written before this module existed came from express-session and carry its `cookie` member
// next to `bff`; new ones carry the same member, so an instance still running the older release (a
// rolling deploy) reads them too. Only `bff` is read.
const LEGACY_COOKIE = Object.freeze({
  originalMaxAge: null,
  expires: null,
  secure: true,
  httpOnly: true,
  path: '/',
  sameSite: 'strict',
});

/** The stored JSON of a session, parsed; undefined when it is unreadable or holds no BFF session. */
export function parseSessionData(json: string): BffSessionData | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    return undefined;
  }
  const data = (parsed as { bff?: unknown } | null)?.bff;
  if (typeof data !== 'object' || data === null) return undefined;
  const candidate = data as Partial<BffSessionData>;
  if (
    typeof candidate.iss !== 'string' ||
    typeof candidate.sub !== 'string' ||
    typeof candidate.lastSeenAt !== 'number' ||
    typeof candidate.expiresAt !== 'number'
  ) {
    return undefined;
  }
  return data as BffSessionData;
}

/** The JSON stored for `data`. */
export function serializeSessionData(data: BffSessionData): string {
  return JSON.stringify({ cookie: LEGACY_COOKIE, bff: data });
}
