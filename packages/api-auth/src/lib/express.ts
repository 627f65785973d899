import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { extractAccessToken, extractBearerToken, isDPoPScheme, renderAccessTokenError } from './bearer.js';
import type { AccessTokenValidatorOptions } from './config.js';
import type { DPoPPolicy } from './dpop-config.js';
import { AccessTokenError } from './errors.js';
import type { AccessTokenAuth, TokenKind } from './types.js';
import { type AccessTokenValidator, createAccessTokenValidator } from './validator.js';

declare global {
  namespace Express {
    interface Request {
      /** Set by `requireAccessToken` from `@gatehouse/api-auth`: the validated token's claims, scopes and kind. */
      auth?: AccessTokenAuth;
    }
  }
}

/** Options of {@link requireAccessToken}. */
export interface RequireAccessTokenOptions {
  /**
   * When true, a request without any credentials passes with `req.auth` undefined (a "user or
   * none" route); a bad or malformed token is still rejected. Default false.
   */
  optional?: boolean;
  /**
   * How this route treats DPoP (RFC 9449): `required` (only `Authorization: DPoP` with a proof),
   * `allowed` (DPoP or Bearer; a DPoP-bound token sent as Bearer is still refused) or `disabled`
   * (Bearer only). Default `allowed` when the validator has the `dpop` option, else `disabled`.
   */
  dpop?: DPoPPolicy;
}

/** What a route's challenges need; built once per middleware, carried on the request for the guards. */
interface Challenge {
  readonly realm: string;
  readonly dpop: DPoPPolicy;
  readonly algs: string | undefined;
  /** The validator's current DPoP nonce source, when nonces are on. */
  readonly nonce: (() => string | undefined) | undefined;
}

// The challenge travels on the request so requireScope/requireUser can build the same one.
const CHALLENGE = Symbol('gatehouse.api-auth.challenge');
interface ChallengeCarrier {
  [CHALLENGE]?: Challenge;
}

const POLICIES: readonly DPoPPolicy[] = ['required', 'allowed', 'disabled'];

/** RFC 6749 §3.3 scope-token: printable ASCII without space, `"` or `\`. */
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/;

function send(
  res: Response,
  error: AccessTokenError,
  challenge: Challenge,
  scheme?: 'Bearer' | 'DPoP',
): void {
  // A DPoP client learns the current nonce from any answer to a DPoP request (RFC 9449 §9).
  const nonce =
    scheme === 'DPoP' || error.code === 'ERR_API_AUTH_USE_DPOP_NONCE' ? challenge.nonce?.() : undefined;
  const rendered = renderAccessTokenError(error, challenge.realm, {
    dpop: challenge.dpop,
    scheme,
    algs: challenge.algs,
    nonce,
  });
  res.status(rendered.status).set(rendered.headers).json(rendered.body);
}

function toAccessTokenError(cause: unknown): AccessTokenError {
  return cause instanceof AccessTokenError
    ? cause
    : new AccessTokenError('ERR_API_AUTH_INTERNAL', 'the token could not be validated', { cause });
}

function isValidator(
  value: AccessTokenValidator | AccessTokenValidatorOptions,
): value is AccessTokenValidator {
  return typeof (value as AccessTokenValidator).validate === 'function';
}

/**
 * Express middleware that accepts a request only with a valid access token in the `Authorization`
 * header (`Bearer`, or `DPoP` with a `DPoP` proof header as the route's `dpop` policy allows) and
 * sets `req.auth`. Failures are answered directly with the RFC 6750 / RFC 9449 status,
 * `WWW-Authenticate` challenge(s), `DPoP-Nonce` when nonces are on, and a JSON body; keys,
 * introspection or the replay cache unavailable → 503.
 *
 * The DPoP `htu` is checked against the validator's `dpop.publicUrl` plus `req.originalUrl`'s path;
 * the `Host` and `X-Forwarded-*` headers are never read.
 *
 * @param validator A validator from {@link createAccessTokenValidator} (share one per API) or its options.
 * @see https://www.rfc-editor.org/rfc/rfc6750
 * @see https://www.rfc-editor.org/rfc/rfc9449#section-7
 */
export function requireAccessToken(
  validator: AccessTokenValidator | AccessTokenValidatorOptions,
  options: RequireAccessTokenOptions = {},
): RequestHandler {
  const resolved = isValidator(validator) ? validator : createAccessTokenValidator(validator);
  const dpopConfig = resolved.config.dpop;
  const policy = options.dpop ?? (dpopConfig ? 'allowed' : 'disabled');
  if (!POLICIES.includes(policy)) {
    throw new TypeError(
      `@gatehouse/api-auth: requireAccessToken(): "dpop" must be one of ${POLICIES.join(', ')}`,
    );
  }
  if (policy !== 'disabled' && !dpopConfig) {
    throw new TypeError(
      `@gatehouse/api-auth: requireAccessToken({ dpop: '${policy}' }) needs a validator created with dpop: { publicUrl }`,
    );
  }
  const challenge: Challenge = Object.freeze({
    realm: resolved.config.realm,
    dpop: policy,
    algs: policy === 'disabled' ? undefined : dpopConfig?.algs,
    nonce: dpopConfig?.nonce ? resolved.dpopNonce : undefined,
  });
  const optional = options.optional === true;
  const logger = resolved.config.logger;

  const fail = (res: Response, cause: unknown, scheme?: 'Bearer' | 'DPoP') => {
    const error = toAccessTokenError(cause);
    if (error.status >= 500) logger.error({ code: error.code }, 'access token validation failed on our side');
    else logger.debug({ code: error.code, reason: error.description }, 'access token rejected');
    send(res, error, challenge, scheme);
  };

  const noCredentials = (req: Request, res: Response, next: NextFunction, cause: unknown): void => {
    if (optional && cause instanceof AccessTokenError && cause.code === 'ERR_API_AUTH_NO_TOKEN') {
      req.auth = undefined;
      next();
      return;
    }
    fail(res, cause);
  };

  // DPoP requests, and every request on a DPoP-only route: the general path.
  const viaPolicy = (req: Request, res: Response, next: NextFunction): void => {
    let scheme: 'Bearer' | 'DPoP';
    let token: string;
    try {
      ({ scheme, token } = extractAccessToken(
        { authorization: req.headers.authorization, url: req.url, body: req.body },
        { dpop: policy },
      ));
    } catch (cause) {
      noCredentials(req, res, next, cause);
      return;
    }
    const nonce = challenge.nonce;
    const pending =
      scheme === 'DPoP'
        ? resolved.validateDPoP(token, {
            // headersDistinct keeps repeated headers apart (RFC 9449 §4.3 check 1).
            proof: req.headersDistinct?.dpop ?? req.headers.dpop,
            method: req.method,
            url: req.originalUrl,
          })
        : resolved.validate(token);
    pending.then(
      (auth) => {
        if (scheme === 'DPoP' && nonce) res.set('dpop-nonce', nonce() as string);
        req.auth = auth;
        next();
      },
      (cause: unknown) => fail(res, cause, scheme),
    );
  };

  return function requireAccessTokenMiddleware(req: Request, res: Response, next: NextFunction): void {
    (req as ChallengeCarrier)[CHALLENGE] = challenge;
    const header = req.headers.authorization;
    // Bearer requests on a route that accepts Bearer keep the original path: no per-request DPoP work.
    if (policy === 'required' || (policy === 'allowed' && header !== undefined && isDPoPScheme(header))) {
      viaPolicy(req, res, next);
      return;
    }
    let token: string;
    try {
      token = extractBearerToken({ authorization: header, url: req.url, body: req.body });
    } catch (cause) {
      noCredentials(req, res, next, cause);
      return;
    }
    resolved.validate(token).then(
      (auth) => {
        req.auth = auth;
        next();
      },
      (cause: unknown) => fail(res, cause, 'Bearer'),
    );
  };
}

/** The guard preamble: 401 when no token was required before, 500 when requireAccessToken is missing. */
function authOf(req: Request, res: Response): { auth: AccessTokenAuth; challenge: Challenge } | undefined {
  const challenge = (req as ChallengeCarrier)[CHALLENGE];
  if (challenge === undefined) {
    send(
      res,
      new AccessTokenError(
        'ERR_API_AUTH_INTERNAL',
        'the route is misconfigured: mount requireAccessToken() first',
      ),
      { realm: 'api', dpop: 'disabled', algs: undefined, nonce: undefined },
    );
    return undefined;
  }
  if (req.auth === undefined) {
    send(res, new AccessTokenError('ERR_API_AUTH_NO_TOKEN', 'an access token is required'), challenge);
    return undefined;
  }
  return { auth: req.auth, challenge };
}

function schemeOf(auth: AccessTokenAuth): 'Bearer' | 'DPoP' {
  return auth.dpop ? 'DPoP' : 'Bearer';
}

/**
 * Requires every listed scope in the token; otherwise 403 `insufficient_scope` with the required
 * scopes in the challenge's `scope` attribute. Mount after {@link requireAccessToken}.
 *
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3.1
 */
export function requireScope(...scopes: string[]): RequestHandler {
  if (scopes.length === 0)
    throw new TypeError('@gatehouse/api-auth: requireScope() needs at least one scope');
  for (const scope of scopes) {
    if (typeof scope !== 'string' || !SCOPE_TOKEN.test(scope)) {
      throw new TypeError(
        `@gatehouse/api-auth: requireScope(): "${String(scope)}" is not a valid scope token`,
      );
    }
  }
  const required = Object.freeze([...scopes]);
  return function requireScopeMiddleware(req: Request, res: Response, next: NextFunction): void {
    const found = authOf(req, res);
    if (!found) return;
    const granted = found.auth.scopes;
    for (const scope of required) {
      if (!granted.includes(scope)) {
        send(
          res,
          new AccessTokenError('ERR_API_AUTH_INSUFFICIENT_SCOPE', 'the access token lacks a required scope', {
            scope: required,
          }),
          found.challenge,
          schemeOf(found.auth),
        );
        return;
      }
    }
    next();
  };
}

function requireKind(kind: TokenKind): RequestHandler {
  const description =
    kind === 'user' ? 'this route requires a user token' : 'this route requires a client token';
  return function requireKindMiddleware(req: Request, res: Response, next: NextFunction): void {
    const found = authOf(req, res);
    if (!found) return;
    if (found.auth.kind !== kind) {
      send(
        res,
        new AccessTokenError('ERR_API_AUTH_WRONG_TOKEN_KIND', description),
        found.challenge,
        schemeOf(found.auth),
      );
      return;
    }
    next();
  };
}

/** Allows only user tokens (code flow); a client-credentials token gets 403. Mount after {@link requireAccessToken}. */
export function requireUser(): RequestHandler {
  return requireKind('user');
}

/** Allows only client-credentials tokens; a user token gets 403. Mount after {@link requireAccessToken}. */
export function requireClient(): RequestHandler {
  return requireKind('client');
}
