// The clients every sample IdP registers (the README's table): the BFF, the workers, the sample
// API's introspection credentials and the start page's demo client.
import type { ClientMetadata } from 'oidc-provider';
import { CLIENT_API_SCOPE, USER_API_SCOPE } from './constants.js';
import { DEMO_CLIENT_ID } from './lib/demo.js';
import type { ResolvedIdpConfig } from './options.js';

/** The default clients of the sample suite (see the README's table). */
export function defaultClients(config: ResolvedIdpConfig): ClientMetadata[] {
  const bff = config.bffBaseUrl;
  const clients: ClientMetadata[] = [
    {
      client_id: 'bff',
      client_name: 'Gatehouse sample app',
      client_secret: config.clientSecrets.bff,
      token_endpoint_auth_method: 'client_secret_basic',
      // client_credentials too: the BFF also fetches tokens for its own (machine) API calls.
      grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
      response_types: ['code'],
      redirect_uris: [`${bff}/bff/callback`],
      post_logout_redirect_uris: [`${bff}/`, `${bff}/bff/signed-out`],
      backchannel_logout_uri: `${bff}/bff/backchannel`,
      backchannel_logout_session_required: true,
      scope: `openid profile email offline_access ${USER_API_SCOPE} ${CLIENT_API_SCOPE}`,
      id_token_signed_response_alg: config.signingAlg,
      ...(config.requirePushedAuthorizationRequests ? { require_pushed_authorization_requests: true } : {}),
    },
    {
      client_id: 'worker',
      client_name: 'Gatehouse sample worker',
      client_secret: config.clientSecrets.worker,
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: CLIENT_API_SCOPE,
    },
    {
      client_id: 'api',
      client_name: 'Gatehouse sample API (introspection)',
      client_secret: config.clientSecrets.api,
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: [],
      response_types: [],
      redirect_uris: [],
    },
  ];
  clients.push({
    // Public client behind the IdP's own start page ("Try signing in").
    client_id: DEMO_CLIENT_ID,
    client_name: 'Sample IdP start page',
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code'],
    response_types: ['code'],
    redirect_uris: [`${config.issuer}/demo/callback`],
    post_logout_redirect_uris: [`${config.issuer}/`],
    scope: 'openid profile email',
  });
  if (config.workerJwks) {
    clients.push({
      client_id: 'worker-jwt',
      client_name: 'Gatehouse sample worker (private_key_jwt)',
      token_endpoint_auth_method: 'private_key_jwt',
      jwks: config.workerJwks,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: CLIENT_API_SCOPE,
    });
  }
  return clients;
}
