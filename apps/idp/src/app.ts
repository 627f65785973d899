// The public surface of the sample IdP (`@gatehouse/sample-idp`). Each part lives in its own file:
//   options.ts               IdpOptions, ResolvedIdpConfig, resolveIdpOptions (validation)
//   constants.ts             audience, scopes, default client ids and dev secrets
//   clients.ts               defaultClients (bff, worker, worker-jwt, api, idp-demo)
//   token-policy.ts          grants, offline_access, refresh tokens, resource server, introspection
//   provider-configuration.ts  the oidc-provider Configuration (features, cookies, pages)
//   provider.ts              one provider instance: token counters, outcome logs, listener carry-over
//   interactions.ts          the login form route
//   end-sessions.ts          the administrator's "log out everywhere"
//   create-idp.ts            createIdp and the Idp it returns
//   lib/                     accounts, store (+ its file), keys, HTML, HTTP helpers, demo pages
export type { JWK } from 'jose';
export type { ClientMetadata } from 'oidc-provider';
export { defaultClients } from './clients.js';
export {
  CLIENT_API_SCOPE,
  DEFAULT_CLIENT_IDS,
  DEV_CLIENT_SECRETS,
  SAMPLE_API_AUDIENCE,
  USER_API_SCOPE,
} from './constants.js';
export { createIdp, type Idp } from './create-idp.js';
export type { EndSessionsResult } from './end-sessions.js';
export { DEMO_USERS, type DemoUser, type DemoUserClaims } from './lib/accounts.js';
export { IdpError } from './lib/errors.js';
export { LOCK_FILE, STORE_FILE } from './lib/journal.js';
export {
  COOKIE_KEYS_FILE,
  generateSigningJwk,
  loadOrCreateSigningKeys,
  type PrivateJwks,
  publicJwk,
  SIGNING_KEYS_FILE,
} from './lib/keys.js';
export {
  type IdpLogger,
  type IdpOptions,
  type ResolvedIdpConfig,
  resolveIdpOptions,
  type SigningAlg,
} from './options.js';
