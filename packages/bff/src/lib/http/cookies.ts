// Cookie helpers shared by the session, login and logout steps, on the `cookie` package (RFC 6265
// parsing and a serialiser that rejects a name or value that would break out of its header). Every
// value the BFF sets itself is base64url (or `<number>.<base64url>`), which URL-encoding leaves as is.
import type { ServerResponse } from 'node:http';
import { parse, serialize } from 'cookie';

/** Appends one Set-Cookie value, keeping those already set. */
export function appendSetCookie(res: ServerResponse, value: string): void {
  res.appendHeader('Set-Cookie', value);
}

/** A `__Host-` cookie: Secure, HttpOnly, Path=/, no Domain. */
export function hostCookie(name: string, value: string, maxAge: number, sameSite: 'Lax' | 'Strict'): string {
  return serialize(name, value, {
    path: '/',
    maxAge,
    httpOnly: true,
    secure: true,
    sameSite: sameSite === 'Lax' ? 'lax' : 'strict',
  });
}

/** Every cookie in a Cookie header, by name (the first of a repeated name wins). */
export function readCookies(header: string | undefined): Record<string, string | undefined> {
  return header ? parse(header) : {};
}

/** Reads one cookie from a Cookie header. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  return readCookies(header)[name];
}
