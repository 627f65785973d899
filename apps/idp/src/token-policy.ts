// What the IdP grants and issues: first-party grants without a consent page, offline_access
// without prompt=consent, refresh tokens, the sample API as the one resource server, and who may
// introspect or revoke which token.
import {
  type Configuration,
  errors,
  type Grant,
  type KoaContextWithOIDC,
  type ResourceServer,
} from 'oidc-provider';
import { CLIENT_API_SCOPE, SAMPLE_API_AUDIENCE, USER_API_SCOPE } from './constants.js';
import type { ResolvedIdpConfig } from './options.js';

type Features = NonNullable<Configuration['features']>;

/** The OpenID scopes the IdP knows (the API scopes are added where scopes are listed). */
export const OIDC_SCOPES = new Set(['openid', 'offline_access', 'profile', 'email']);

/**
 * oidc-provider drops `offline_access` from an authorization request unless it carries
 * `prompt=consent` (OIDC Core §11). Our clients are first-party and never see a consent page, so
 * {@link recordOfflineAccess} records "offline_access was requested" in this private parameter
 * (stored with the interaction and with a pushed request), and the grant, `expiresWithSession` and
 * `issueRefreshToken` use it.
 */
export const OFFLINE_PARAM = 'gatehouse_offline_access';

const offlineRequested = (ctx: KoaContextWithOIDC): boolean =>
  (ctx.oidc.params as Record<string, unknown> | undefined)?.[OFFLINE_PARAM] === '1';

/**
 * Validator of {@link OFFLINE_PARAM} (oidc-provider runs it on every authorization and PAR request,
 * present or not, after its own scope checks). It sets the marker from the scope the client really
 * sent (query of `GET /auth`, body of a PAR request), so a value the client sends itself
 * is overwritten. At `/auth` with a `request_uri` the parameters are the pushed ones, where this
 * already ran, so the marker is kept as pushed.
 */
export function recordOfflineAccess(ctx: KoaContextWithOIDC): void {
  if (ctx.oidc.route === 'authorization' && ctx.oidc.entities.PushedAuthorizationRequest) return;
  const sent = ctx.method === 'GET' || ctx.method === 'HEAD' ? ctx.query : ctx.oidc.body;
  const scope = typeof sent?.scope === 'string' ? sent.scope.split(' ') : [];
  (ctx.oidc.params as Record<string, unknown>)[OFFLINE_PARAM] = scope.includes('offline_access')
    ? '1'
    : undefined;
}

/**
 * Every client of this IdP is first-party: grant what it asks for instead of showing a consent
 * page (including offline_access, when {@link OFFLINE_PARAM} says it was requested).
 */
export async function loadExistingGrant(ctx: KoaContextWithOIDC): Promise<Grant | undefined> {
  const { client, session } = ctx.oidc;
  const accountId = session?.accountId;
  if (!client || !session || !accountId) return undefined;
  const grantId =
    (ctx.oidc.result as { consent?: { grantId?: string } } | undefined)?.consent?.grantId ??
    session.grantIdFor(client.clientId);
  let grant = grantId ? await ctx.oidc.provider.Grant.find(grantId) : undefined;
  if (grant && grant.accountId !== accountId) grant = undefined;
  grant ??= new ctx.oidc.provider.Grant({ clientId: client.clientId, accountId });
  const requested = String((ctx.oidc.params as { scope?: unknown } | undefined)?.scope ?? '')
    .split(' ')
    .filter(Boolean);
  const oidcScopes = requested.filter((s) => OIDC_SCOPES.has(s));
  if (offlineRequested(ctx)) oidcScopes.push('offline_access');
  if (oidcScopes.length > 0) grant.addOIDCScope(oidcScopes.join(' '));
  for (const indicator of Object.keys(ctx.oidc.resourceServers ?? {})) {
    const rsScopes = requested.filter((s) => s === USER_API_SCOPE);
    if (indicator === SAMPLE_API_AUDIENCE && rsScopes.length > 0)
      grant.addResourceScope(indicator, rsScopes.join(' '));
  }
  await grant.save();
  return grant;
}

/**
 * offline_access survives as {@link OFFLINE_PARAM}; the code remembers it as "does not expire
 * with the session" (oidc-provider then leaves `expiresWithSession` unset), which is what
 * {@link issueRefreshToken} decides on.
 */
export const expiresWithSession: NonNullable<Configuration['expiresWithSession']> = async (ctx, code) =>
  !(code.scopes.has('offline_access') || offlineRequested(ctx));

/** A refresh token for clients allowed the grant type whose code outlives the session. */
export const issueRefreshToken: NonNullable<Configuration['issueRefreshToken']> = async (
  _ctx,
  client,
  code,
) =>
  client.grantTypeAllowed('refresh_token') &&
  (code.scopes.has('offline_access') ||
    (code as { expiresWithSession?: boolean }).expiresWithSession !== true);

function audienceIncludes(aud: unknown, wanted: string): boolean {
  return aud === wanted || (Array.isArray(aud) && aud.includes(wanted));
}

/** Introspection: the sample API (client `api`) may introspect tokens issued for it; others only their own. */
export const introspectionAllowed: NonNullable<
  NonNullable<Features['introspection']>['allowedPolicy']
> = async (_ctx, client, token) =>
  token.clientId === client.clientId ||
  (client.clientId === 'api' && audienceIncludes((token as { aud?: unknown }).aud, SAMPLE_API_AUDIENCE));

/** Revocation: a client revokes only its own tokens. */
export const revocationAllowed: NonNullable<NonNullable<Features['revocation']>['allowedPolicy']> = async (
  _ctx,
  client,
  token,
) => token.clientId === client.clientId;

/** The sample API is the one resource server; every access token is for it (RFC 8707, RFC 9068). */
export function resourceIndicators(config: ResolvedIdpConfig): Features['resourceIndicators'] {
  const resourceServer = (ctx: KoaContextWithOIDC): ResourceServer => {
    const params = ctx.oidc.params as { grant_type?: unknown } | undefined;
    const isClientToken = params?.grant_type === 'client_credentials';
    return {
      // User tokens carry `api`, client tokens `api.reports`: one scope set per kind of token.
      scope: isClientToken ? CLIENT_API_SCOPE : USER_API_SCOPE,
      audience: SAMPLE_API_AUDIENCE,
      accessTokenTTL: config.accessTokenTtl,
      accessTokenFormat: config.accessTokenFormat,
      ...(config.accessTokenFormat === 'jwt' ? { jwt: { sign: { alg: config.signingAlg } } } : {}),
    };
  };
  return {
    enabled: true,
    defaultResource: async (_ctx, _client, oneOf) => oneOf ?? SAMPLE_API_AUDIENCE,
    useGrantedResource: async () => true,
    getResourceServerInfo: async (ctx, indicator) => {
      if (indicator !== SAMPLE_API_AUDIENCE) throw new errors.InvalidTarget();
      return resourceServer(ctx);
    },
  };
}

/** Lifetimes in seconds, by oidc-provider model. */
export function tokenTtls(config: ResolvedIdpConfig): NonNullable<Configuration['ttl']> {
  return {
    AccessToken: config.accessTokenTtl,
    ClientCredentials: config.accessTokenTtl,
    AuthorizationCode: 60,
    IdToken: config.idTokenTtl,
    RefreshToken: config.refreshTokenTtl,
    Interaction: 600,
    Session: config.sessionTtl,
    Grant: Math.max(config.refreshTokenTtl, config.sessionTtl),
  };
}
