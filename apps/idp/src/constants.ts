// Names and values of the sample suite that other packages and tests rely on (see DESIGN.md).
import { DEMO_CLIENT_ID } from './lib/demo.js';

/** Audience (resource indicator) of the sample API; every access token the IdP issues is for it. */
export const SAMPLE_API_AUDIENCE = 'urn:gatehouse:sample-api';
/** Scope of user access tokens (code flow). */
export const USER_API_SCOPE = 'api';
/** Scope of client-credentials access tokens (workers, the BFF's own calls). */
export const CLIENT_API_SCOPE = 'api.reports';

/** Client ids registered by default. */
export const DEFAULT_CLIENT_IDS = Object.freeze([
  'bff',
  'worker',
  'worker-jwt',
  'api',
  DEMO_CLIENT_ID,
] as const);

/** Dev-only default client secrets (override with env `BFF_CLIENT_SECRET` etc. in server.ts). */
export const DEV_CLIENT_SECRETS = Object.freeze({
  bff: 'bff-secret',
  worker: 'worker-secret',
  api: 'api-secret',
});
