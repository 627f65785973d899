// createIdp: the sample OpenID provider assembled from its parts (options, clients, provider
// configuration, store, login pages) plus what tests drive it with (key rotation, reconfiguration,
// forged signatures, counters, "log out everywhere").
import { randomBytes } from 'node:crypto';
import type { RequestListener } from 'node:http';
import {
  importJWK,
  type JWK,
  type JWSHeaderParameters,
  type JWTHeaderParameters,
  type JWTPayload,
  SignJWT,
} from 'jose';
import type { ClientMetadata, default as Provider } from 'oidc-provider';
import { defaultClients } from './clients.js';
import { type EndSessionsResult, endSessions } from './end-sessions.js';
import { createInteractionPages } from './interactions.js';
import { IdpStore } from './lib/adapter.js';
import { createDemoPages } from './lib/demo.js';
import { crossSiteSessionCookie, isLoopbackHost, sendHtml } from './lib/http.js';
import {
  generateSigningJwk,
  loadOrCreateCookieKeys,
  loadOrCreateSigningKeys,
  type PrivateJwks,
  publicJwk,
  saveSigningKeys,
} from './lib/keys.js';
import { type IdpOptions, type ResolvedIdpConfig, resolveIdpOptions } from './options.js';
import { createProviderBuilder, type ProviderInstance } from './provider.js';

/** A running sample IdP (not yet listening: mount {@link Idp.handler} on an HTTP server). */
export interface Idp {
  readonly issuer: string;
  readonly config: ResolvedIdpConfig;
  /** The current oidc-provider instance (replaced by {@link Idp.rotateSigningKey}; listeners are carried over). */
  readonly provider: Provider;
  /** Login pages + `GET /health` + the provider's endpoints. */
  readonly handler: RequestListener;
  /** Public JWKS as published at `jwks_uri` (newest key first). */
  publicJwks(): { keys: JWK[] };
  /** A new key signs from now on; the previous keys stay published (the newest three are kept). */
  rotateSigningKey(): Promise<void>;
  /**
   * Signs `payload` as is (no claims added) with the current key, or with the stored key whose
   * `kid` is `header.kid`. Header members override the defaults (`alg` of the key, `kid`), so a
   * test can forge tokens with a genuine signature but bad claims, a bad `typ` or an unknown `kid`.
   */
  sign(payload: JWTPayload, header?: Partial<JWSHeaderParameters>): Promise<string>;
  /** Token-endpoint requests seen, by `grant_type` (all when omitted). */
  readonly counters: { token(grantType?: string): number; reset(): void };
  /**
   * Ends every IdP session of `accountId` as an administrator would: sends a back-channel logout
   * token to every client of the session that registered a back-channel logout URI, revokes the
   * grants, deletes the sessions.
   */
  endSessions(accountId: string): Promise<EndSessionsResult>;
  /**
   * Points the `bff` client at another origin (redirect, post-logout and back-channel URIs), for
   * tests that learn the BFF's port only after the IdP started. Sessions and tokens survive.
   */
  setBffBaseUrl(url: string): void;
  /** Registers one more (first-party) client on the running IdP. */
  addClient(metadata: ClientMetadata): void;
  /**
   * Stops the background sweep of expired records and, with `dataDir`, closes the store file and
   * releases the folder. Saves nothing: with `dataDir` every change is on disk when it happens.
   */
  close(): void;
}

/**
 * Creates the sample OpenID provider: oidc-provider 9 configured for the Gatehouse samples (clients
 * `bff`, `worker`, `worker-jwt`, `api`, `idp-demo`; users alice/bob; RFC 9068 JWT access tokens for
 * {@link SAMPLE_API_AUDIENCE}; refresh-token rotation; revocation; introspection; RP-initiated and
 * back-channel logout) plus its own login page.
 *
 * @see https://github.com/panva/node-oidc-provider
 */
export async function createIdp(options: IdpOptions): Promise<Idp> {
  // `let`: setBffBaseUrl/addClient re-resolve it; every closure below reads the current value.
  let config = resolveIdpOptions(options);
  const { logger } = config;
  let jwks: PrivateJwks = config.signingKeys
    ? structuredClone(config.signingKeys)
    : config.keysDir
      ? await loadOrCreateSigningKeys(config.keysDir, config.signingAlg)
      : { keys: [await generateSigningJwk(config.signingAlg)] };
  for (const key of jwks.keys) key.alg ??= config.signingAlg;

  const issuerUrl = new URL(config.issuer);
  const crossSiteSession = issuerUrl.protocol === 'https:' || isLoopbackHost(issuerUrl.hostname);

  // Persistent cookie keys: a restarted IdP must still accept the session cookies browsers hold.
  const cookieKeys = config.dataDir
    ? await loadOrCreateCookieKeys(config.dataDir)
    : [randomBytes(32).toString('base64url')];
  const store = new IdpStore({ dataDir: config.dataDir, logger });
  const addedClients: ClientMetadata[] = [];
  let clients = [...defaultClients(config), ...config.extraClients];
  const builder = createProviderBuilder(logger);
  const build = (previous?: Provider): ProviderInstance =>
    builder.build({ config, clients, keys: jwks, adapter: store.factory, cookieKeys }, previous);

  let current: ProviderInstance;
  try {
    current = build();
  } catch (error) {
    store.close(); // releases the data folder's lock
    throw error;
  }
  const sweeper = setInterval(() => store.sweep(), 60_000);
  sweeper.unref();

  const interactions = createInteractionPages(() => current.provider, logger);
  const demo = createDemoPages(config.issuer, sendHtml);

  const handler: RequestListener = (req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (demo.handle(req, res, path)) return;
    if (path === '/health' && (req.method === 'GET' || req.method === 'HEAD')) {
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify({ status: 'ok' }));
      return;
    }
    if (crossSiteSession) crossSiteSessionCookie(res);
    if (interactions.handle(req, res, path)) return;
    current.callback(req, res);
  };

  const rotateSigningKey = async (): Promise<void> => {
    const fresh = await generateSigningJwk(config.signingAlg);
    // Newest first: oidc-provider signs with the first matching key; older keys stay published.
    jwks = { keys: [fresh, ...jwks.keys].slice(0, 3) };
    if (config.keysDir && !config.signingKeys) await saveSigningKeys(config.keysDir, jwks);
    current = build(current.provider);
    logger.info({ kid: fresh.kid }, 'signing key rotated');
  };

  const reconfigure = (next: ResolvedIdpConfig): void => {
    const nextClients = [...defaultClients(next), ...next.extraClients, ...addedClients];
    const previous = { config, clients };
    config = next;
    clients = nextClients;
    try {
      current = build(current.provider);
    } catch (error) {
      ({ config, clients } = previous);
      throw error;
    }
  };

  const setBffBaseUrl = (url: string): void => {
    reconfigure(resolveIdpOptions({ ...options, issuer: config.issuer, bffBaseUrl: url }));
  };

  const addClient = (metadata: ClientMetadata): void => {
    if (typeof metadata?.client_id !== 'string' || metadata.client_id === '') {
      throw new TypeError('addClient: the client metadata needs a client_id');
    }
    if (clients.some((c) => c.client_id === metadata.client_id)) {
      throw new TypeError(`addClient: client_id "${metadata.client_id}" is taken; pick another id`);
    }
    addedClients.push(metadata);
    try {
      reconfigure(config);
    } catch (error) {
      addedClients.pop();
      throw error;
    }
  };

  const sign = async (payload: JWTPayload, header: Partial<JWSHeaderParameters> = {}): Promise<string> => {
    const key = jwks.keys.find((k) => k.kid === header.kid) ?? jwks.keys[0]!;
    const alg = key.alg ?? config.signingAlg;
    const privateKey = await importJWK(key, alg);
    return new SignJWT(payload)
      .setProtectedHeader({ alg, kid: key.kid, ...header } as JWTHeaderParameters)
      .sign(privateKey);
  };

  return {
    issuer: config.issuer,
    get config() {
      return config;
    },
    get provider() {
      return current.provider;
    },
    handler,
    publicJwks: () => ({ keys: jwks.keys.map(publicJwk) }),
    rotateSigningKey,
    sign,
    counters: builder.counters,
    endSessions: (accountId: string) => endSessions({ provider: current.provider, store, logger }, accountId),
    setBffBaseUrl,
    addClient,
    close: () => {
      clearInterval(sweeper);
      store.close();
    },
  };
}
