// The internal parts one createBff instance wires together, handed to the route modules.
import type { Response } from 'express';
import type { Configuration } from 'openid-client';
import type { ResolvedBffConfig } from './config.js';
import type { Logger } from './context.js';
import type { Sealer } from './crypto.js';
import type { SessionManager } from './session.js';
import type { SessionStore } from './store/types.js';
import type { TokenService } from './tokens.js';

/** Everything a route module of the core needs. */
export interface Core {
  readonly config: ResolvedBffConfig;
  readonly store: SessionStore;
  readonly sessions: SessionManager;
  readonly tokens: TokenService;
  readonly logger: Logger;
  readonly clock: () => number;
  /** Seals small cookie payloads (logout state). */
  readonly cookieSealer: Sealer;
  getOidcConfiguration(): Promise<Configuration>;
  /** Ends one session everywhere (store entry, index, token cache). */
  endSession(sessionId: string): Promise<void>;
}

/** Appends one Set-Cookie value, keeping those already set. */
export function appendSetCookie(res: Response, value: string): void {
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
