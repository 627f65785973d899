// The session cookie: `<name>=s%3A<id>.<HMAC-SHA256(id) base64, no padding>` (the format express-session
// wrote, so sessions from earlier releases stay valid). The first secret signs; every secret verifies,
// so secrets rotate without signing anyone out.
import { createHmac } from 'node:crypto';
import { safeEqual } from '../crypto.js';

/** Verified cookie values are remembered this long (ms): a busy session costs one HMAC per minute. */
const VERIFIED_MS = 60_000;
const VERIFIED_MAX = 10_000;

/** Reads and writes the session cookie of one BFF. */
export interface SessionCookie {
  /** The session id in a Cookie header, verifying the signature; undefined if absent or forged. */
  idFrom(cookieHeader: string | undefined): string | undefined;
  /** The Set-Cookie value naming session `id`: Path=/, HttpOnly, Secure, SameSite=Strict, no Max-Age (S1, S4). */
  issue(id: string): string;
  /** The Set-Cookie value that expires the session cookie. */
  readonly clear: string;
}

/** The session cookie `name`, signed with `secrets[0]`. */
export function createSessionCookie(
  name: string,
  secrets: readonly string[],
  clock: () => number,
): SessionCookie {
  const prefix = `${name}=`;
  const mac = (id: string, secret: string) =>
    createHmac('sha256', secret).update(id).digest('base64').replace(/=+$/, '');
  const verified = new Map<string, { id: string; at: number }>();

  function idFrom(header: string | undefined): string | undefined {
    if (!header) return undefined;
    for (const part of header.split(';')) {
      const trimmed = part.trim();
      if (!trimmed.startsWith(prefix)) continue;
      let value: string;
      try {
        value = decodeURIComponent(trimmed.slice(prefix.length));
      } catch {
        return undefined;
      }
      if (!value.startsWith('s:')) return undefined;
      const hit = verified.get(value);
      if (hit && clock() - hit.at < VERIFIED_MS) return hit.id;
      const signed = value.slice(2);
      const dot = signed.lastIndexOf('.');
      if (dot <= 0) return undefined;
      const id = signed.slice(0, dot);
      for (const secret of secrets) {
        if (safeEqual(signed, `${id}.${mac(id, secret)}`)) {
          if (verified.size >= VERIFIED_MAX) verified.clear();
          verified.set(value, { id, at: clock() });
          return id;
        }
      }
      return undefined;
    }
    return undefined;
  }

  return {
    idFrom,
    issue: (id) =>
      // No Max-Age: a browser-session cookie; the lifetime is enforced server-side (S4).
      `${prefix}${encodeURIComponent(`s:${id}.${mac(id, secrets[0] as string)}`)}; Path=/; HttpOnly; Secure; SameSite=Strict`,
    clear: `${prefix}; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; Secure; SameSite=Strict`,
  };
}
