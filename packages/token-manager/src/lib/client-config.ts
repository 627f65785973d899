// A client's options (clients.<name>), validated into a frozen ResolvedClient: server, credentials,
// client assertion, scopes, resources, extra parameters and DPoP.
import { createHash, KeyObject } from 'node:crypto';
import type { CryptoKey, PrivateKey } from 'openid-client';
import { jwkThumbprint, privateKeyObject, publicJwkOf, type ResolvedDpop, resolveDpop } from './dpop.js';
import { fail, normalizeResources, normalizeScopes, rejectUnknown, url } from './option-checks.js';
import type { ClientAuthenticationMethod, PrivateJwk, TokenClientOptions } from './types.js';

/** A client after validation. */
export interface ResolvedClient {
  readonly name: string;
  readonly issuer: URL | undefined;
  readonly tokenEndpoint: URL | undefined;
  /** Issuer if known, else the token endpoint: the server's identity in cache keys and assertions. */
  readonly serverId: string;
  readonly clientId: string;
  readonly clientSecret: string | undefined;
  readonly authMethod: ClientAuthenticationMethod;
  readonly privateKey: CryptoKey | PrivateKey | PrivateJwk | undefined;
  readonly assertionAudience: 'issuer' | 'token_endpoint';
  readonly assertionTyp: string | undefined;
  readonly scopes: readonly string[];
  readonly resources: readonly string[];
  readonly parameters: Readonly<Record<string, string>>;
  readonly allowHttp: boolean;
  /**
   * Identifies the credentials (auth method + secret, or the public key's thumbprint) so that two
   * configurations with the same `client_id` but different secrets or keys never share a token.
   * A SHA-256 over the secret: it only ever leaves the process keyed (see the cache key).
   */
  readonly credentialId: string;
  /** DPoP key, when configured. */
  readonly dpop: ResolvedDpop | undefined;
}

const CLIENT_KEYS = new Set([
  'issuer',
  'tokenEndpoint',
  'clientId',
  'clientSecret',
  'clientAuthentication',
  'privateKey',
  'clientAssertion',
  'scope',
  'resource',
  'parameters',
  'dpop',
  'dangerouslyAllowInsecureHttp',
]);
/** Parameters the manager sets itself; letting `parameters` override them would break the grant. */
const RESERVED_PARAMETERS = new Set([
  'grant_type',
  'scope',
  'resource',
  'client_id',
  'client_secret',
  'client_assertion',
  'client_assertion_type',
]);
const AUTH_METHODS = new Set<ClientAuthenticationMethod>([
  'client_secret_basic',
  'client_secret_post',
  'private_key_jwt',
]);
const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);

/** Validates the options of client `name`. */
export function resolveClient(name: string, raw: TokenClientOptions): ResolvedClient {
  const where = `clients.${name}.`;
  if (typeof raw !== 'object' || raw === null) fail(`clients.${name} must be an object`);
  rejectUnknown(raw, CLIENT_KEYS, where);
  if (typeof raw.clientId !== 'string' || raw.clientId === '')
    fail(`${where}clientId must be a non-empty string`);

  const issuer = url(raw.issuer, `${where}issuer`);
  const tokenEndpoint = url(raw.tokenEndpoint, `${where}tokenEndpoint`);
  if (!issuer && !tokenEndpoint) fail(`${where}issuer (for discovery) or ${where}tokenEndpoint is required`);
  if (
    raw.dangerouslyAllowInsecureHttp !== undefined &&
    typeof raw.dangerouslyAllowInsecureHttp !== 'boolean'
  ) {
    fail(`${where}dangerouslyAllowInsecureHttp must be a boolean`);
  }
  const allowHttp = raw.dangerouslyAllowInsecureHttp === true;
  for (const [label, u] of [
    ['issuer', issuer],
    ['tokenEndpoint', tokenEndpoint],
  ] as const) {
    if (u?.protocol === 'http:' && !LOOPBACK.has(u.hostname) && !allowHttp) {
      fail(
        `${where}${label} uses plain http on a non-loopback host; use https (or set dangerouslyAllowInsecureHttp for a lab setup)`,
      );
    }
  }

  if (raw.privateKey !== undefined && (typeof raw.privateKey !== 'object' || raw.privateKey === null)) {
    fail(`${where}privateKey must be a private CryptoKey, { key, kid } or a private JWK`);
  }
  const authMethod = raw.clientAuthentication ?? (raw.privateKey ? 'private_key_jwt' : 'client_secret_basic');
  let privateKeyThumbprint: string | undefined;
  if (!AUTH_METHODS.has(authMethod)) {
    fail(
      `${where}clientAuthentication must be one of ${[...AUTH_METHODS].join(', ')}, got ${JSON.stringify(authMethod)}`,
    );
  }
  if (authMethod === 'private_key_jwt') {
    if (!raw.privateKey) fail(`${where}privateKey is required for private_key_jwt`);
    if (raw.clientSecret !== undefined)
      fail(`${where}clientSecret must not be set together with private_key_jwt`);
    // Import it now: a malformed key fails at creation (not on the first token request), and its
    // thumbprint identifies the credentials in the cache key.
    const input = raw.privateKey as { key?: unknown };
    if (input instanceof KeyObject) {
      fail(
        `${where}privateKey must be a CryptoKey or a private JWK (e.g. keyObject.export({ format: 'jwk' }))`,
      );
    }
    privateKeyThumbprint = jwkThumbprint(
      publicJwkOf(
        privateKeyObject(
          'kty' in input || !('key' in input) ? raw.privateKey : input.key,
          fail,
          `${where}privateKey`,
        ),
      ),
    );
  } else {
    if (typeof raw.clientSecret !== 'string' || raw.clientSecret === '') {
      fail(`${where}clientSecret must be a non-empty string for ${authMethod}`);
    }
    if (raw.privateKey) fail(`${where}privateKey is only used with clientAuthentication: 'private_key_jwt'`);
  }

  const assertion = raw.clientAssertion ?? {};
  if (typeof assertion !== 'object' || assertion === null) fail(`${where}clientAssertion must be an object`);
  rejectUnknown(assertion, new Set(['audience', 'typ']), `${where}clientAssertion.`);
  const audience = assertion.audience ?? (issuer ? 'issuer' : 'token_endpoint');
  if (audience !== 'issuer' && audience !== 'token_endpoint') {
    fail(`${where}clientAssertion.audience must be 'issuer' or 'token_endpoint'`);
  }
  if (audience === 'issuer' && !issuer)
    fail(`${where}clientAssertion.audience 'issuer' needs ${where}issuer`);
  const typ = assertion.typ === undefined ? 'client-authentication+jwt' : assertion.typ;
  if (typ !== false && (typeof typ !== 'string' || typ === '')) {
    fail(`${where}clientAssertion.typ must be a non-empty string or false`);
  }

  const parameters: Record<string, string> = {};
  if (raw.parameters !== undefined) {
    if (typeof raw.parameters !== 'object' || raw.parameters === null)
      fail(`${where}parameters must be an object`);
    for (const [key, value] of Object.entries(raw.parameters)) {
      if (RESERVED_PARAMETERS.has(key)) {
        fail(
          `${where}parameters.${key} is set by the manager; use the scope/resource/client options instead`,
        );
      }
      if (typeof value !== 'string') fail(`${where}parameters.${key} must be a string`);
      parameters[key] = value;
    }
  }

  const dpop = resolveDpop(raw.dpop, fail, where);
  const credentialId = createHash('sha256')
    .update(JSON.stringify([authMethod, privateKeyThumbprint ?? raw.clientSecret]))
    .digest('base64url');

  return Object.freeze({
    name,
    issuer,
    tokenEndpoint,
    // The issuer identifier exactly as given (URL parsing would add a trailing slash): it is
    // compared as a string, e.g. as the assertion `aud`.
    serverId: issuer ? (typeof raw.issuer === 'string' ? raw.issuer : issuer.href) : tokenEndpoint!.href,
    clientId: raw.clientId,
    clientSecret: raw.clientSecret,
    authMethod,
    privateKey: raw.privateKey,
    assertionAudience: audience,
    assertionTyp: typ === false ? undefined : typ,
    scopes: Object.freeze(normalizeScopes(raw.scope, `${where}scope`)),
    resources: Object.freeze(normalizeResources(raw.resource, `${where}resource`)),
    parameters: Object.freeze(parameters),
    allowHttp,
    credentialId,
    dpop,
  });
}
