// One oidc-provider instance of the sample IdP: counts token requests, logs outcomes (never
// artefacts), and carries the listeners of the instance it replaces (key rotation, new clients).
import type { EventEmitter } from 'node:events';
import type { RequestListener } from 'node:http';
import Provider, { type errors, type KoaContextWithOIDC } from 'oidc-provider';
import type { IdpLogger } from './options.js';
import { type ProviderInput, providerConfiguration } from './provider-configuration.js';

/** A provider and its `node:http` listener. */
export interface ProviderInstance {
  provider: Provider;
  callback: RequestListener;
}

/** Builds provider instances that share one set of token counters and one logger. */
export interface ProviderBuilder {
  /** A new instance; `previous`'s listeners (added by tests and apps) move over to it. */
  build(input: ProviderInput, previous?: Provider): ProviderInstance;
  /** Token-endpoint requests seen, by `grant_type` (all when omitted). */
  readonly counters: { token(grantType?: string): number; reset(): void };
}

export function createProviderBuilder(logger: IdpLogger): ProviderBuilder {
  const tokenCounts = new Map<string, number>();
  // Our own log listeners, so that a rebuild carries over only the ones others attached.
  const internalListeners = new WeakSet<(...args: unknown[]) => void>();

  // oidc-provider's typed event overloads do not cover a generic helper; Provider is an EventEmitter.
  const addInternal = <A extends unknown[]>(p: Provider, event: string, listener: (...args: A) => void) => {
    const untyped = listener as unknown as (...args: unknown[]) => void;
    internalListeners.add(untyped);
    (p as unknown as EventEmitter).on(event, untyped);
  };

  const build = (input: ProviderInput, previous?: Provider): ProviderInstance => {
    const p = new Provider(input.config.issuer, providerConfiguration(input));
    p.use(async (ctx, next) => {
      await next();
      if (ctx.oidc?.route === 'token') {
        const params = (ctx.oidc.params ?? ctx.oidc.body) as { grant_type?: unknown } | undefined;
        const grantType = typeof params?.grant_type === 'string' ? params.grant_type : 'unknown';
        tokenCounts.set(grantType, (tokenCounts.get(grantType) ?? 0) + 1);
      }
    });
    // Log outcomes, never artefacts: error codes and client ids, not tokens or request bodies.
    addInternal(p, 'server_error', (_ctx: unknown, err: Error) =>
      logger.error({ err: err.message }, 'idp server error'),
    );
    // Expected outcomes of silent login (prompt=none) are not warnings.
    const routine = new Set(['login_required', 'interaction_required', 'consent_required']);
    for (const event of ['grant.error', 'authorization.error', 'introspection.error', 'revocation.error']) {
      addInternal(p, event, (ctx: KoaContextWithOIDC, err: errors.OIDCProviderError) => {
        const fields = {
          error: err.error,
          error_description: err.error_description,
          client_id: ctx.oidc?.client?.clientId,
        };
        if (routine.has(err.error)) logger.info(fields, event);
        else logger.warn(fields, event);
      });
    }
    addInternal(p, 'grant.success', (ctx: KoaContextWithOIDC) => {
      const params = ctx.oidc.params as { grant_type?: unknown } | undefined;
      logger.info({ grant_type: params?.grant_type, client_id: ctx.oidc.client?.clientId }, 'token issued');
    });
    addInternal(p, 'authorization.success', (ctx: KoaContextWithOIDC) =>
      logger.info(
        { client_id: ctx.oidc.client?.clientId, sub: ctx.oidc.session?.accountId },
        'authorization granted',
      ),
    );
    addInternal(p, 'backchannel.success', (_ctx: unknown, client: { clientId: string }) =>
      logger.info({ client_id: client.clientId }, 'back-channel logout delivered'),
    );
    addInternal(p, 'backchannel.error', (_ctx: unknown, err: Error, client: { clientId: string }) =>
      logger.warn({ client_id: client.clientId, err: err.message }, 'back-channel logout failed'),
    );
    addInternal(p, 'end_session.success', (ctx: KoaContextWithOIDC) =>
      logger.info({ client_id: ctx.oidc?.client?.clientId }, 'signed out'),
    );
    if (previous) {
      // Keep the listeners tests and apps attached to the old instance.
      for (const name of previous.eventNames()) {
        for (const listener of previous.rawListeners(name)) {
          const untyped = listener as (...args: unknown[]) => void;
          if (!internalListeners.has(untyped)) (p as unknown as EventEmitter).on(name, untyped);
        }
      }
    }
    return { provider: p, callback: p.callback() };
  };

  return {
    build,
    counters: {
      token: (grantType?: string) =>
        grantType === undefined
          ? [...tokenCounts.values()].reduce((a, b) => a + b, 0)
          : (tokenCounts.get(grantType) ?? 0),
      reset: () => tokenCounts.clear(),
    },
  };
}
