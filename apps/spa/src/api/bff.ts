// The only module that talks to the network. Every call goes to this page's own origin (the BFF
// host); the browser never holds a token. The BFF needs two things from us:
//   - the `X-CSRF: 1` header: a cross-site page cannot add a custom header without a CORS
//     preflight, which the BFF does not allow, so the header proves the call came from this app;
//   - the session cookie, which the browser adds by itself (HttpOnly, SameSite=Strict).
import { callLog } from './callLog';
import type { Claim, Todo } from './types';

/** Why a call failed, in the terms the UI cares about. */
export type FailureKind = 'signed-out' | 'upstream' | 'network' | 'http';

export class BffCallError extends Error {
  readonly kind: FailureKind;
  readonly status: number | null;
  readonly path: string;

  constructor(kind: FailureKind, status: number | null, path: string, message: string) {
    super(message);
    this.name = 'BffCallError';
    this.kind = kind;
    this.status = status;
    this.path = path;
  }
}

function kindOf(status: number): FailureKind {
  if (status === 401) return 'signed-out';
  if (status === 502 || status === 503 || status === 504) return 'upstream';
  return 'http';
}

/** A short reason from an RFC 9457 problem body or `{ error }`, never the raw body. */
async function describeFailure(response: Response): Promise<string> {
  try {
    const body: unknown = await response.json();
    if (body && typeof body === 'object') {
      const { title, detail, error } = body as Record<string, unknown>;
      const text = [title, detail ?? error].filter((part) => typeof part === 'string' && part).join(': ');
      if (text) return text;
    }
  } catch {
    // Not JSON: fall through to the status text.
  }
  return response.statusText || `HTTP ${response.status}`;
}

const NOTES: Record<FailureKind, string> = {
  'signed-out': 'no session',
  upstream: 'API unavailable',
  network: 'network error',
  http: 'failed',
};

async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { 'X-CSRF': '1', Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const startedAt = new Date();
  const t0 = performance.now();
  let response: Response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      // An XHR must never follow a redirect to the IdP; the BFF answers 401 instead.
      redirect: 'error',
      cache: 'no-store',
    });
  } catch {
    const durationMs = Math.round(performance.now() - t0);
    callLog.add({ method, path, status: null, durationMs, startedAt, note: NOTES.network });
    throw new BffCallError('network', null, path, 'The BFF could not be reached.');
  }
  const durationMs = Math.round(performance.now() - t0);
  if (!response.ok) {
    const kind = kindOf(response.status);
    callLog.add({ method, path, status: response.status, durationMs, startedAt, note: NOTES[kind] });
    throw new BffCallError(kind, response.status, path, await describeFailure(response));
  }
  callLog.add({ method, path, status: response.status, durationMs, startedAt });
  if (response.status === 204) return undefined as T;
  const text = await response.text();
  return (text ? JSON.parse(text) : undefined) as T;
}

/** The signed-in user's claims, or `null` when there is no session (401). */
export async function getUser(): Promise<Claim[] | null> {
  try {
    return await call<Claim[]>('GET', '/bff/user');
  } catch (error) {
    if (error instanceof BffCallError && error.kind === 'signed-out') return null;
    throw error;
  }
}

/** Where the browser goes to sign in: a top-level navigation, never a fetch. */
export function loginUrl(returnUrl = '/'): string {
  return `/bff/login?returnUrl=${encodeURIComponent(returnUrl)}`;
}

export const todos = {
  list: () => call<Todo[]>('GET', '/api/todos'),
  add: (title: string) => call<Todo>('POST', '/api/todos', { title }),
  update: (id: string, patch: { done?: boolean; title?: string }) =>
    call<Todo>('PATCH', `/api/todos/${encodeURIComponent(id)}`, patch),
  remove: (id: string) => call<void>('DELETE', `/api/todos/${encodeURIComponent(id)}`),
};
