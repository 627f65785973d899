// The login transaction (SECURITY L3, L4, S6): PKCE verifier, nonce, returnUrl and expiry, kept only in
// a `__Host-` SameSite=Lax cookie named after the state and sealed with AES-256-GCM bound to that state.
// Written by the login start (login.ts), opened once by the callback (callback.ts).
import type { Request } from 'express';
import { createSealer, type Sealer, sha256 } from '../crypto.js';
import { hostCookie, readCookies } from '../http/cookies.js';
import type { BffServices } from '../services.js';
import { LOGIN_STATE_MARK } from '../store/marks.js';

/** Login transactions expire after this many seconds (L3: Max-Age ≤ 600). */
export const TRANSACTION_TTL = 600;
/**
 * Most pending transaction cookies one browser keeps: starting another sign-in beyond it expires the
 * oldest, so a browser's Cookie header stays bounded however many tabs (or scripts) start a login.
 */
export const MAX_PENDING_TRANSACTIONS = 8;

export interface LoginTransaction {
  readonly verifier: string;
  readonly nonce: string;
  readonly returnUrl: string;
  readonly silent: boolean;
  /** Expiry, epoch seconds on the BFF's clock (the cookie's Max-Age is only the browser's word). */
  readonly exp: number;
}

const TX_COOKIE_PREFIX = '__Host-bff-tx-';
export const txCookieName = (state: string) => `${TX_COOKIE_PREFIX}${sha256(state).slice(0, 16)}`;
// Associated data: a sealed transaction opens only under the state it was issued for.
export const txAad = (state: string) => `login-transaction:${state}`;
export const txClaimKey = (state: string) => `${LOGIN_STATE_MARK}${sha256(state)}`;

/** Seals transactions; one per createBff (HKDF from the session secrets, its own purpose). */
const sealers = new WeakMap<BffServices, Sealer>();
export function txSealer(core: BffServices): Sealer {
  let sealer = sealers.get(core);
  if (!sealer) {
    sealer = createSealer(core.config.sessionSecrets, 'login-transaction');
    sealers.set(core, sealer);
  }
  return sealer;
}

export function parseTransaction(plain: string | undefined): LoginTransaction | undefined {
  if (plain === undefined) return undefined;
  try {
    const tx = JSON.parse(plain) as Partial<LoginTransaction>;
    if (
      typeof tx.verifier !== 'string' ||
      typeof tx.nonce !== 'string' ||
      typeof tx.returnUrl !== 'string' ||
      typeof tx.silent !== 'boolean' ||
      typeof tx.exp !== 'number'
    ) {
      return undefined;
    }
    return tx as LoginTransaction;
  } catch {
    return undefined;
  }
}

// Cookie value: `<exp>.<sealed transaction>`. The clear-text expiry only orders a browser's own
// pending cookies for eviction (the state of an old cookie is unknown, so it cannot be opened); the
// sealed copy inside is the one the callback trusts.
export const txCookieValue = (tx: LoginTransaction, sealed: string) => `${tx.exp}.${sealed}`;
export function splitTxCookie(value: string): { exp: number; sealed: string } {
  const dot = value.indexOf('.');
  const exp = Number(value.slice(0, dot));
  return { exp: Number.isFinite(exp) ? exp : 0, sealed: value.slice(dot + 1) };
}

/**
 * Set-Cookie values that expire the oldest pending transaction cookies of this browser, so that with
 * the new one at most MAX_PENDING_TRANSACTIONS remain.
 */
export function expireOldTransactions(header: string | undefined): string[] {
  const pending: { name: string; exp: number }[] = [];
  for (const [name, value] of Object.entries(readCookies(header))) {
    if (name.startsWith(TX_COOKIE_PREFIX) && value !== undefined) {
      pending.push({ name, exp: splitTxCookie(value).exp });
    }
  }
  const excess = pending.length - (MAX_PENDING_TRANSACTIONS - 1);
  if (excess <= 0) return [];
  pending.sort((a, b) => a.exp - b.exp);
  return pending.slice(0, excess).map((p) => hostCookie(p.name, '', 0, 'Lax'));
}

/** A single query parameter: undefined when absent, null when repeated or not a string. */
export function firstQuery(req: Request, name: string): string | undefined | null {
  const value = req.query[name];
  if (value === undefined) return undefined;
  return typeof value === 'string' ? value : null; // arrays / objects are invalid
}
