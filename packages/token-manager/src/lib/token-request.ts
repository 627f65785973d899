// One token request with retries (growing, jittered back-off; the server's Retry-After when it
// fits the caller's wait), and the check that the granted scope covers the requested one (T7).
import { setTimeout as sleep } from 'node:timers/promises';
import type { CallContext } from './call-context.js';
import type { ResolvedConfig } from './config.js';
import type { IssuedToken } from './endpoint.js';
import { TokenManagerError } from './errors.js';
import type { Emitter } from './events.js';
import { asTokenManagerError } from './exchange-failure.js';

function backoffMs(retry: ResolvedConfig['retry'], attempt: number): number {
  const ceiling = Math.min(retry.maxDelayMs, retry.baseDelayMs * 2 ** (attempt - 1));
  // "Equal jitter": at least half the exponential delay, so retries never fire back to back, and
  // a random rest so that many processes failing together do not retry in lockstep.
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

/** Requests a token for `ctx`, retrying transient failures within `retry`; reports each attempt. */
export async function requestWithRetries(
  ctx: CallContext,
  retry: ResolvedConfig['retry'],
  events: Emitter,
): Promise<{ issued: IssuedToken; attempts: number }> {
  const { attempts, maxDelayMs } = retry;
  const scope = ctx.scopes.length > 0 ? ctx.scopes.join(' ') : undefined;
  for (let attempt = 1; ; attempt++) {
    events.emit('token.requested', { client: ctx.name, attempt, scope, resource: [...ctx.resources] });
    try {
      return { issued: await ctx.endpoint.request(ctx.scopes, ctx.resources), attempts: attempt };
    } catch (caught) {
      const error = asTokenManagerError(caught, ctx.name);
      let delay: number | undefined;
      if (error.retryable && attempt < attempts) {
        if (error.retryAfter === undefined) delay = backoffMs(retry, attempt);
        else if (error.retryAfter * 1000 <= maxDelayMs) delay = error.retryAfter * 1000;
        // else: the server asks for a longer pause than we wait inside a call; stop here and
        // block the key for that long instead (see `request`).
      }
      events.emit('token.failed', {
        client: ctx.name,
        code: error.code,
        oauthError: error.oauthError,
        upstreamStatus: error.upstreamStatus,
        attempt,
        retryable: error.retryable,
        willRetry: delay !== undefined,
        suppressed: false,
      });
      if (delay === undefined) {
        throw new TokenManagerError(error.code, error.message, {
          client: error.client,
          oauthError: error.oauthError,
          upstreamStatus: error.upstreamStatus,
          retryAfter: error.retryAfter,
          attempts: attempt,
          cause: error.cause,
        });
      }
      await sleep(delay);
    }
  }
}

/** T7: throws when the token server granted less than the requested scope. */
export function checkScope(ctx: CallContext, issued: IssuedToken): void {
  // T7: RFC 6749 §5.1: an absent `scope` means the requested scope was granted as is.
  if (issued.scope === undefined || ctx.scopes.length === 0) return;
  const granted = new Set(issued.scope.split(/\s+/));
  const missing = ctx.scopes.filter((scope) => !granted.has(scope));
  if (missing.length > 0) {
    throw new TokenManagerError(
      'ERR_TOKEN_SCOPE_NOT_GRANTED',
      `token for client "${ctx.name}" lacks the requested scope: ${missing.join(' ')}`,
      { client: ctx.name },
    );
  }
}
