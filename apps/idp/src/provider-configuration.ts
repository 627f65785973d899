// The oidc-provider Configuration of the sample IdP: storage, keys, cookies, accounts and claims,
// the features the samples use, the logout and error pages. Policies live in token-policy.ts.
import { randomBytes } from 'node:crypto';
import type { Account, AdapterFactory, ClientMetadata, Configuration } from 'oidc-provider';
import { CLIENT_API_SCOPE, USER_API_SCOPE } from './constants.js';
import { findUser } from './lib/accounts.js';
import { autoSubmitPage, messagePage } from './lib/html.js';
import { loopbackFriendlyFetch } from './lib/http.js';
import type { PrivateJwks } from './lib/keys.js';
import type { ResolvedIdpConfig } from './options.js';
import {
  expiresWithSession,
  introspectionAllowed,
  issueRefreshToken,
  loadExistingGrant,
  OFFLINE_PARAM,
  OIDC_SCOPES,
  recordOfflineAccess,
  resourceIndicators,
  revocationAllowed,
  tokenTtls,
} from './token-policy.js';

/** What one provider instance is built from (a key rotation or a new client builds another). */
export interface ProviderInput {
  config: ResolvedIdpConfig;
  clients: ClientMetadata[];
  keys: PrivateJwks;
  adapter: AdapterFactory;
  cookieKeys: string[];
}

const findAccount: Configuration['findAccount'] = async (_ctx, sub): Promise<Account | undefined> => {
  const user = findUser(sub);
  if (!user) return undefined;
  return { accountId: sub, claims: async () => ({ sub, ...user.claims }) };
};

const rpInitiatedLogout: NonNullable<Configuration['features']>['rpInitiatedLogout'] = {
  enabled: true,
  logoutSource: async (ctx, form) => {
    if (ctx.oidc.client) {
      // First-party client: no "do you want to sign out?" page; the form posts itself.
      const auto = form
        .replace('<form ', '<form data-autosubmit ')
        .replace('</form>', '<input type="hidden" name="logout" value="yes"/></form>');
      ctx.type = 'html';
      ctx.body = autoSubmitPage('Signing you out', auto);
      return;
    }
    ctx.type = 'html';
    ctx.body = messagePage('Sign out?', ['Sign out of the Gatehouse sample IdP?']).replace(
      '</main>',
      `${form.replace('</form>', '<input type="hidden" name="logout" value="yes"/><button type="submit">Sign out</button></form>')}</main>`,
    );
  },
  postLogoutSuccessSource: async (ctx) => {
    ctx.type = 'html';
    ctx.body = messagePage('Signed out', ['You are signed out of the Gatehouse sample IdP.']);
  },
};

/** The oidc-provider configuration for one provider instance. */
export function providerConfiguration({
  config,
  clients,
  keys,
  adapter,
  cookieKeys,
}: ProviderInput): Configuration {
  return {
    adapter,
    clients,
    jwks: structuredClone(keys) as Configuration['jwks'],
    // `long` covers the IdP session cookie; see crossSiteSessionCookie for its SameSite.
    cookies: {
      keys: cookieKeys,
      long: { httpOnly: true, sameSite: 'lax' },
      short: { httpOnly: true, sameSite: 'lax' },
    },
    findAccount,
    claims: {
      openid: ['sub'],
      profile: ['name', 'given_name', 'family_name'],
      email: ['email', 'email_verified'],
    },
    // The API scopes are listed too: oidc-provider only accepts client `scope` metadata made of these.
    scopes: [...OIDC_SCOPES, USER_API_SCOPE, CLIENT_API_SCOPE],
    // Put the profile/email claims in the ID token: the access token is for the API, not UserInfo.
    conformIdTokenClaims: false,
    responseTypes: ['code'],
    pkce: { required: () => true },
    clientDefaults: { id_token_signed_response_alg: config.signingAlg, grant_types: ['authorization_code'] },
    // PAR (`/request`) and DPoP are on by oidc-provider's defaults; requirePushedAuthorizationRequests
    // makes PAR mandatory per client (see clients.ts), requireDpopNonce makes every DPoP proof carry a
    // server nonce (the secret is random per provider instance: nonces do not outlive the process).
    features: {
      ...(config.requireDpopNonce
        ? { dPoP: { enabled: true, nonceSecret: randomBytes(32), requireNonce: () => true } }
        : {}),
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true, allowedPolicy: introspectionAllowed },
      revocation: { enabled: true, allowedPolicy: revocationAllowed },
      resourceIndicators: resourceIndicators(config),
      rpInitiatedLogout,
      backchannelLogout: { enabled: true },
    },
    interactions: { url: async (_ctx, interaction) => `/interaction/${interaction.uid}` },
    loadExistingGrant,
    extraParams: { [OFFLINE_PARAM]: recordOfflineAccess },
    expiresWithSession,
    issueRefreshToken,
    rotateRefreshToken: config.rotateRefreshTokens,
    ttl: tokenTtls(config),
    renderError: async (ctx, out) => {
      ctx.type = 'html';
      ctx.body = messagePage('Something went wrong', ['The request could not be completed.'], {
        error: out.error,
        error_description: out.error_description,
      });
    },
    fetch: loopbackFriendlyFetch,
  };
}
