// The administrator's "log out everywhere" for one user: back-channel logout to every client of
// each IdP session, then the grants and sessions are gone.
import type Provider from 'oidc-provider';
import type { IdpStore } from './lib/adapter.js';
import type { IdpLogger } from './options.js';

/** Result of {@link Idp.endSessions}. */
export interface EndSessionsResult {
  /** IdP sessions ended. */
  sessions: number;
  /** Clients whose back-channel logout URI answered 200/204. */
  notified: string[];
  /** Clients whose back-channel logout delivery failed (message only). */
  failed: Array<{ clientId: string; error: string }>;
}

interface ClientWithBackchannel {
  clientId: string;
  backchannelLogoutUri?: string | undefined;
  // Public method of oidc-provider's Client model that @types/oidc-provider does not declare.
  backchannelLogout(sub: string, sid: string | undefined): Promise<void>;
}

/**
 * Ends every IdP session of `accountId`: sends a back-channel logout token to every client of the
 * session that registered a back-channel logout URI, revokes the grants, deletes the sessions.
 */
export async function endSessions(
  { provider, store, logger }: { provider: Provider; store: IdpStore; logger: IdpLogger },
  accountId: string,
): Promise<EndSessionsResult> {
  const result: EndSessionsResult = { sessions: 0, notified: [], failed: [] };
  const sessionAdapter = store.factory('Session');
  const grantAdapter = store.factory('Grant');
  const tokenAdapter = store.factory('AccessToken');
  for (const { id, payload } of store.sessionsOf(accountId)) {
    result.sessions += 1;
    for (const [clientId, authorization] of Object.entries(payload.authorizations ?? {})) {
      const client = (await provider.Client.find(clientId)) as unknown as ClientWithBackchannel | undefined;
      if (client?.backchannelLogoutUri) {
        try {
          await client.backchannelLogout(accountId, authorization.sid);
          result.notified.push(clientId);
        } catch (error) {
          result.failed.push({ clientId, error: (error as Error).message });
          logger.warn({ client_id: clientId, err: (error as Error).message }, 'back-channel logout failed');
        }
      }
      if (authorization.grantId) {
        await tokenAdapter.revokeByGrantId(authorization.grantId);
        await grantAdapter.destroy(authorization.grantId);
      }
    }
    await sessionAdapter.destroy(id);
  }
  logger.info({ sub: accountId, sessions: result.sessions }, 'sessions ended by administrator');
  return result;
}
