// The IdP's own start page and a "try signing in" round trip (public client `idp-demo`), so the
// IdP alone already shows a working sign-in before any other sample app exists.
import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { decodeJwt } from 'jose';
import { escapeHtml, page } from './html.js';

export const DEMO_CLIENT_ID = 'idp-demo';

const TTL_MS = 10 * 60 * 1000;
const MAX_PENDING = 1000;

type Send = (res: ServerResponse, status: number, html: string) => void;

export interface DemoPages {
  /** Handles `/`, `/demo/start`, `/demo/callback`; returns false for other paths. */
  handle(req: IncomingMessage, res: ServerResponse, path: string): boolean;
}

export function createDemoPages(issuer: string, send: Send): DemoPages {
  // state → PKCE verifier, for sign-ins started from the start page (bounded, short-lived).
  const pending = new Map<string, { verifier: string; expires: number }>();
  const redirectUri = `${issuer}/demo/callback`;

  const home = (): string =>
    page(
      'Sample IdP',
      `<h1>Sample identity provider</h1>
<p class="lead">An OpenID provider for the Gatehouse samples, built on oidc-provider.</p>
<form method="get" action="/demo/start"><button type="submit">Try signing in</button></form>
<dl>
<dt>Issuer</dt><dd><code>${escapeHtml(issuer)}</code></dd>
<dt>Discovery</dt><dd><a href="/.well-known/openid-configuration">/.well-known/openid-configuration</a></dd>
<dt>Signing keys</dt><dd><a href="/jwks">/jwks</a></dd>
</dl>
<p class="hint">Demo users: <code>alice</code> / <code>alice</code> and <code>bob</code> / <code>bob</code>.</p>`,
    );

  async function callback(url: URL, res: ServerResponse): Promise<void> {
    const error = url.searchParams.get('error');
    const state = url.searchParams.get('state') ?? '';
    const entry = pending.get(state);
    pending.delete(state);
    if (error) {
      send(
        res,
        400,
        page(
          'Not signed in',
          `<h1>Not signed in</h1><p class="lead">${escapeHtml(error)}</p><p><a href="/">Back</a></p>`,
        ),
      );
      return;
    }
    if (!entry || entry.expires < Date.now() || url.searchParams.get('iss') !== issuer) {
      send(res, 400, page('Expired', '<h1>That sign-in expired</h1><p><a href="/">Start again</a></p>'));
      return;
    }
    const response = await fetch(`${issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'authorization_code',
        client_id: DEMO_CLIENT_ID,
        code: url.searchParams.get('code') ?? '',
        redirect_uri: redirectUri,
        code_verifier: entry.verifier,
      }),
    });
    const body = (await response.json()) as { id_token?: string; error?: string };
    if (!response.ok || !body.id_token) {
      send(
        res,
        502,
        page(
          'Not signed in',
          `<h1>Token request failed</h1><p class="lead">${escapeHtml(body.error ?? response.status)}</p>`,
        ),
      );
      return;
    }
    // Straight from our own token endpoint over a direct request, so decoding is enough here.
    const claims = decodeJwt(body.id_token);
    const rows = ['sub', 'name', 'email', 'email_verified', 'auth_time']
      .filter((k) => claims[k] !== undefined)
      .map((k) => `<dt>${escapeHtml(k)}</dt><dd>${escapeHtml(claims[k])}</dd>`)
      .join('');
    send(
      res,
      200,
      page(
        'Signed in',
        `<h1>Signed in as ${escapeHtml(claims.name ?? claims.sub)}</h1>
<p class="lead">The IdP issued an authorization code, and the demo client exchanged it (with PKCE) for an ID token with these claims:</p>
<dl>${rows}</dl>
<form method="get" action="/session/end"><input type="hidden" name="client_id" value="${DEMO_CLIENT_ID}"><button type="submit">Sign out</button></form>`,
      ),
    );
  }

  return {
    handle(req, res, path) {
      if (req.method !== 'GET' && req.method !== 'HEAD') return false;
      if (path === '/') {
        send(res, 200, home());
        return true;
      }
      if (path === '/demo/start') {
        if (pending.size >= MAX_PENDING) pending.delete(pending.keys().next().value as string);
        const verifier = randomBytes(32).toString('base64url');
        const state = randomBytes(16).toString('base64url');
        pending.set(state, { verifier, expires: Date.now() + TTL_MS });
        const auth = new URL(`${issuer}/auth`);
        auth.search = new URLSearchParams({
          client_id: DEMO_CLIENT_ID,
          response_type: 'code',
          scope: 'openid profile email',
          redirect_uri: redirectUri,
          state,
          code_challenge: createHash('sha256').update(verifier).digest('base64url'),
          code_challenge_method: 'S256',
        }).toString();
        res.writeHead(303, { location: auth.href, 'cache-control': 'no-store' }).end();
        return true;
      }
      if (path === '/demo/callback') {
        callback(new URL(req.url ?? '/', issuer), res).catch(() => {
          if (!res.headersSent) send(res, 502, page('Not signed in', '<h1>The demo sign-in failed</h1>'));
        });
        return true;
      }
      return false;
    },
  };
}
