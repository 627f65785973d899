// A tiny authorization server for tests that need faults the sample IdP cannot produce on demand:
// a JWKS endpoint that goes down, an introspection endpoint that hangs or errors. Tokens are signed
// with keys generated here. Every request is counted per path.
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, type JWK, type JWTPayload, SignJWT } from 'jose';

export type IntrospectionMode = 'normal' | 'error' | 'hang' | 'not-json';

export interface LocalAs {
  readonly issuer: string;
  readonly audience: string;
  /** Requests per path (e.g. `/jwks`). */
  readonly counts: Map<string, number>;
  /** When false, /jwks answers 503. */
  jwksUp: boolean;
  introspectionMode: IntrospectionMode;
  /** Introspection answers per opaque token; unknown tokens are inactive. */
  readonly opaque: Map<string, Record<string, unknown>>;
  /** Basic credentials the introspection endpoint last saw (for auth assertions). */
  lastIntrospectionAuth: string | undefined;
  /** Signs claims with the current key; defaults make a valid RFC 9068 user token. */
  sign(
    claims?: Partial<JWTPayload> & Record<string, unknown>,
    header?: Record<string, unknown>,
  ): Promise<string>;
  /** Adds a new current key (the old one stays published) and returns its kid. */
  rotate(): Promise<string>;
  /** Stops publishing the key with this kid (a withdrawn key). */
  retire(kid: string): void;
  /** The kid of the current signing key. */
  currentKid(): string;
  close(): Promise<void>;
}

interface Key {
  kid: string;
  privateKey: Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
  publicJwk: JWK;
}

async function newKey(): Promise<Key> {
  const { privateKey, publicKey } = await generateKeyPair('RS256');
  const kid = randomUUID();
  return { kid, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' } };
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

async function readBody(req: IncomingMessage): Promise<string> {
  let text = '';
  for await (const chunk of req) text += chunk;
  return text;
}

export async function startLocalAs(options: { audience?: string } = {}): Promise<LocalAs> {
  const keys: Key[] = [await newKey()];
  const counts = new Map<string, number>();
  const hanging = new Set<ServerResponse>();
  let issuer = '';
  const as: LocalAs = {
    issuer: '',
    audience: options.audience ?? 'urn:test:api',
    counts,
    jwksUp: true,
    introspectionMode: 'normal',
    opaque: new Map(),
    lastIntrospectionAuth: undefined,
    async sign(claims = {}, header = {}) {
      const key = keys[keys.length - 1]!;
      const now = Math.floor(Date.now() / 1000);
      const payload: Record<string, unknown> = {
        iss: issuer,
        aud: as.audience,
        sub: 'alice',
        client_id: 'bff',
        iat: now,
        exp: now + 300,
        jti: randomUUID(),
        scope: 'openid api',
        ...claims,
      };
      for (const [name, value] of Object.entries(payload)) if (value === undefined) delete payload[name];
      return new SignJWT(payload)
        .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: key.kid, ...header } as { alg: string })
        .sign(key.privateKey);
    },
    async rotate() {
      const key = await newKey();
      keys.push(key);
      return key.kid;
    },
    retire(kid) {
      const index = keys.findIndex((key) => key.kid === kid);
      if (index !== -1) keys.splice(index, 1);
    },
    currentKid: () => keys[keys.length - 1]!.kid,
    close: () =>
      new Promise((resolve) => {
        for (const res of hanging) res.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };

  const server: Server = createServer(async (req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    counts.set(path, (counts.get(path) ?? 0) + 1);
    if (path === '/.well-known/openid-configuration') {
      json(res, 200, { issuer, jwks_uri: `${issuer}/jwks`, introspection_endpoint: `${issuer}/introspect` });
    } else if (path === '/jwks') {
      if (as.jwksUp) json(res, 200, { keys: keys.map((key) => key.publicJwk) });
      else json(res, 503, { error: 'down' });
    } else if (path === '/introspect' && req.method === 'POST') {
      as.lastIntrospectionAuth = req.headers.authorization;
      const form = new URLSearchParams(await readBody(req));
      if (as.introspectionMode === 'hang') {
        hanging.add(res);
        return;
      }
      if (as.introspectionMode === 'error') return json(res, 500, { error: 'server_error' });
      if (as.introspectionMode === 'not-json') {
        res.writeHead(200, { 'content-type': 'text/html' }).end('<html>');
        return;
      }
      json(res, 200, as.opaque.get(form.get('token') ?? '') ?? { active: false });
    } else {
      json(res, 404, { error: 'not_found' });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  (as as { issuer: string }).issuer = issuer;
  return as;
}
