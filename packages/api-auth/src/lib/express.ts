import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { extractBearerToken, renderAccessTokenError } from './bearer.js';
import type { AccessTokenValidatorOptions } from './config.js';
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
}

// The realm travels on the request so requireScope/requireUser can build the same challenge.
const REALM = Symbol('gatehouse.api-auth.realm');
interface RealmCarrier {
  [REALM]?: string;
}

/** RFC 6749 §3.3 scope-token: printable ASCII without space, `"` or `\`. */
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/;

function send(res: Response, error: AccessTokenError, realm: string): void {
  const rendered = renderAccessTokenError(error, realm);
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
 * Express middleware that accepts a request only with a valid bearer access token in the
 * `Authorization` header and sets `req.auth`. Failures are answered directly with the RFC 6750
 * status, `WWW-Authenticate` challenge and JSON body; keys or introspection unavailable → 503.
 *
 * @param validator A validator from {@link createAccessTokenValidator} (share one per API) or its options.
 * @see https://www.rfc-editor.org/rfc/rfc6750
 */
export function requireAccessToken(
  validator: AccessTokenValidator | AccessTokenValidatorOptions,
  options: RequireAccessTokenOptions = {},
): RequestHandler {
  const resolved = isValidator(validator) ? validator : createAccessTokenValidator(validator);
  const realm = resolved.config.realm;
  const optional = options.optional === true;
  const logger = resolved.config.logger;

  const fail = (res: Response, cause: unknown) => {
    const error = toAccessTokenError(cause);
    if (error.status >= 500) logger.error({ code: error.code }, 'access token validation failed on our side');
    else logger.debug({ code: error.code, reason: error.description }, 'access token rejected');
    send(res, error, realm);
  };

  return function requireAccessTokenMiddleware(req: Request, res: Response, next: NextFunction): void {
    (req as RealmCarrier)[REALM] = realm;
    let token: string;
    try {
      token = extractBearerToken({ authorization: req.headers.authorization, url: req.url, body: req.body });
    } catch (cause) {
      if (optional && cause instanceof AccessTokenError && cause.code === 'ERR_API_AUTH_NO_TOKEN') {
        req.auth = undefined;
        next();
        return;
      }
      fail(res, cause);
      return;
    }
    resolved.validate(token).then(
      (auth) => {
        req.auth = auth;
        next();
      },
      (cause: unknown) => fail(res, cause),
    );
  };
}

/** The guard preamble: 401 when no token was required before, 500 when requireAccessToken is missing. */
function authOf(req: Request, res: Response): { auth: AccessTokenAuth; realm: string } | undefined {
  const realm = (req as RealmCarrier)[REALM];
  if (realm === undefined) {
    send(
      res,
      new AccessTokenError(
        'ERR_API_AUTH_INTERNAL',
        'the route is misconfigured: mount requireAccessToken() first',
      ),
      'api',
    );
    return undefined;
  }
  if (req.auth === undefined) {
    send(res, new AccessTokenError('ERR_API_AUTH_NO_TOKEN', 'an access token is required'), realm);
    return undefined;
  }
  return { auth: req.auth, realm };
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
          found.realm,
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
      send(res, new AccessTokenError('ERR_API_AUTH_WRONG_TOKEN_KIND', description), found.realm);
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
