// Cookie helpers shared by the session, login and logout steps. Values are written and read without
// URL-decoding: every value the BFF sets itself is base64url (or `<number>.<base64url>`).
import type { ServerResponse } from 'node:http';

/** Appends one Set-Cookie value, keeping those already set. */
export function appendSetCookie(res: ServerResponse, value: string): void {
  const prev = res.getHeader('Set-Cookie');
  const list = prev === undefined ? [] : Array.isArray(prev) ? prev : [String(prev)];
  res.setHeader('Set-Cookie', [...list, value]);
}

/** A `__Host-` cookie: Secure, HttpOnly, Path=/, no Domain. */
export function hostCookie(name: string, value: string, maxAge: number, sameSite: 'Lax' | 'Strict'): string {
  return `${name}=${value}; Path=/; Max-Age=${maxAge}; HttpOnly; Secure; SameSite=${sameSite}`;
}

/** Reads one cookie from a Cookie header without decoding (our values are base64url). */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  const prefix = `${name}=`;
  for (const part of header.split(';')) {
    const trimmed = part.trim();
    if (trimmed.startsWith(prefix)) return trimmed.slice(prefix.length);
  }
  return undefined;
}
