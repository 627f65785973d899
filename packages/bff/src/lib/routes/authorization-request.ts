// The redirect that starts a sign-in: the authorization request in the front channel, or first pushed
// to the OP's PAR endpoint (RFC 9126) with the client's authentication, so that the browser carries only
// `client_id` and the one-time `request_uri` (SECURITY L16). Pushing keeps state, nonce, PKCE challenge,
// scope, redirect URI and resource indicators out of browser history, logs and Referer headers, and the
// OP checks the request (and the client) before the user sees a login page.
import * as client from 'openid-client';
import type { ResolvedBffConfig } from '../config.js';
import { BffError, describeError } from '../errors.js';
import type { Logger } from '../logger.js';
import { classifyTokenError } from '../oidc.js';

/** Retry-After (seconds) of a login whose push failed when the OP named no time itself. */
const PUSH_RETRY_AFTER = 5;
/** The longest Retry-After taken over from the OP (seconds). */
const MAX_PUSH_RETRY_AFTER = 60;

/** Where the browser goes next, or the OAuth error code of a push the OP refused. */
export type AuthorizationRedirect = { readonly url: URL } | { readonly refused: string };

/** Configurations whose PAR decision was logged (once per discovery). */
const announced = new WeakSet<client.Configuration>();

/**
 * Whether this login pushes its request: decided from the option and the discovered metadata.
 * Throws ERR_BFF_CONFIGURATION (500, no redirect) when the two cannot work together.
 */
function shouldPush(mode: ResolvedBffConfig['pushedAuthorizationRequests'], metadata: client.ServerMetadata) {
  const endpoint = typeof metadata.pushed_authorization_request_endpoint === 'string';
  const required = metadata.require_pushed_authorization_requests === true;
  if (mode === 'never') {
    if (required) {
      throw new BffError(
        'ERR_BFF_CONFIGURATION',
        'the OP requires pushed authorization requests (require_pushed_authorization_requests): set pushedAuthorizationRequests to "auto" or "always"',
      );
    }
    return false;
  }
  if (!endpoint && (mode === 'always' || required)) {
    throw new BffError(
      'ERR_BFF_CONFIGURATION',
      mode === 'always'
        ? 'pushedAuthorizationRequests is "always" but the OP metadata has no pushed_authorization_request_endpoint: enable PAR at the OP, or set pushedAuthorizationRequests to "auto" or "never"'
        : 'the OP metadata requires pushed authorization requests but has no pushed_authorization_request_endpoint: fix the OP configuration',
    );
  }
  return endpoint;
}

/** The OAuth `error` of a refused push, when it is a plain token (never the description). */
function oauthErrorCode(err: unknown): string {
  let code: unknown;
  if (err instanceof client.ResponseBodyError) code = err.error;
  else if (err instanceof client.WWWAuthenticateChallengeError) code = err.cause[0]?.parameters.error;
  return typeof code === 'string' && /^[a-z_]{1,64}$/.test(code) ? code : 'login_failed';
}

/** Seconds from the OP's `Retry-After` (delta-seconds only), capped; the default otherwise. */
function retryAfterOf(err: unknown): number {
  const holder = err as { response?: unknown; cause?: unknown };
  const response = holder.response instanceof Response ? holder.response : holder.cause;
  const header = response instanceof Response ? response.headers.get('retry-after')?.trim() : undefined;
  if (header && /^\d{1,6}$/.test(header)) return Math.min(MAX_PUSH_RETRY_AFTER, Math.max(1, Number(header)));
  return PUSH_RETRY_AFTER;
}

/**
 * Builds the authorization redirect for `params` (without `client_id`, which openid-client adds).
 * Pushed, when PAR applies: a refusal (400/401: `invalid_request`, `invalid_client`, …) comes back as
 * `{ refused: code }` for the login error route; a timeout, reset or 5xx/429 throws
 * ERR_BFF_IDP_UNAVAILABLE (503 with Retry-After). Either way nothing has been sent to the browser.
 * @see https://www.rfc-editor.org/rfc/rfc9126
 */
export async function buildAuthorizationRedirect(
  config: ResolvedBffConfig,
  logger: Logger,
  configuration: client.Configuration,
  params: URLSearchParams,
): Promise<AuthorizationRedirect> {
  const push = shouldPush(config.pushedAuthorizationRequests, configuration.serverMetadata());
  if (!announced.has(configuration)) {
    announced.add(configuration);
    logger.info(
      { mode: config.pushedAuthorizationRequests, pushed: push },
      push
        ? 'bff: authorization requests are pushed to the OP (PAR, RFC 9126)'
        : 'bff: authorization requests go in the front channel (no PAR)',
    );
  }
  if (!push) return { url: client.buildAuthorizationUrl(configuration, params) };
  try {
    // Client authentication and the timeout (httpTimeout) come from the Configuration, as for the
    // token endpoint. The pushed body holds every parameter; the returned URL only client_id and
    // request_uri. No retry here: the user's next click is the retry, with a fresh state.
    return { url: await client.buildAuthorizationUrlWithPAR(configuration, params) };
  } catch (err) {
    const kind = classifyTokenError(err);
    if (kind === 'transient') {
      logger.warn({ err: describeError(err) }, 'bff: pushed authorization request failed (OP unavailable)');
      throw new BffError('ERR_BFF_IDP_UNAVAILABLE', 'pushed authorization request failed', {
        cause: err,
        retryAfter: retryAfterOf(err),
      });
    }
    const code = oauthErrorCode(err);
    logger.warn(
      { err: describeError(err), error: code },
      'bff: the OP refused the pushed authorization request (check the client registration and credentials, or set pushedAuthorizationRequests to "never" if this client may not use PAR)',
    );
    return { refused: code };
  }
}
