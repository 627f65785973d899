// The IdP's own sign-in route, `/interaction/:uid[/login|/abort]`: the login form, the password
// check, cancel, and a consent safety net. Failures become an HTML page, never a stack trace.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type Provider from 'oidc-provider';
import { checkPassword, findUser } from './lib/accounts.js';
import { IdpError } from './lib/errors.js';
import { loginPage, messagePage } from './lib/html.js';
import { readForm, sendHtml } from './lib/http.js';
import type { IdpLogger } from './options.js';

const interactionRoute = /^\/interaction\/([A-Za-z0-9_-]{1,64})(?:\/(login|abort))?$/;

/** Handles the interaction routes; `handle` returns false for other paths. */
export interface InteractionPages {
  handle(req: IncomingMessage, res: ServerResponse, path: string): boolean;
}

/** `currentProvider` is read per request: key rotation and new clients replace the provider. */
export function createInteractionPages(currentProvider: () => Provider, logger: IdpLogger): InteractionPages {
  async function interaction(
    req: IncomingMessage,
    res: ServerResponse,
    uid: string,
    action?: string,
  ): Promise<void> {
    const provider = currentProvider();
    const details = await provider.interactionDetails(req, res).catch((error: unknown) => {
      throw new IdpError(
        'ERR_IDP_INTERACTION_EXPIRED',
        400,
        'This sign-in request has expired or was opened in another browser. Go back to the app and sign in again.',
        { cause: error },
      );
    });
    if (details.uid !== uid)
      throw new IdpError('ERR_IDP_INTERACTION_EXPIRED', 400, 'Unknown sign-in request.');
    const clientId = String(details.params.client_id ?? '');
    const client = await provider.Client.find(clientId);
    const clientName = client?.clientName ?? clientId;
    const action_ = `/interaction/${uid}/login`;
    const abortAction = `/interaction/${uid}/abort`;

    if (action === 'abort') {
      if (req.method !== 'POST') throw new IdpError('ERR_IDP_METHOD', 405, 'Use POST.');
      await provider.interactionFinished(
        req,
        res,
        { error: 'access_denied', error_description: 'End-User aborted interaction' },
        { mergeWithLastSubmission: false },
      );
      return;
    }

    if (details.prompt.name === 'consent') {
      // Not reached for the configured (first-party) clients thanks to loadExistingGrant; kept as
      // a safety net so a consent prompt never strands the browser.
      const accountId = details.session?.accountId;
      if (!accountId) throw new IdpError('ERR_IDP_INTERACTION_EXPIRED', 400, 'No sign-in session.');
      const grant = details.grantId
        ? ((await provider.Grant.find(details.grantId)) ?? new provider.Grant({ clientId, accountId }))
        : new provider.Grant({ clientId, accountId });
      const missing = details.prompt.details as {
        missingOIDCScope?: string[];
        missingOIDCClaims?: string[];
        missingResourceScopes?: Record<string, string[]>;
      };
      if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
      if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
      for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
      const grantId = await grant.save();
      await provider.interactionFinished(
        req,
        res,
        { consent: { grantId } },
        { mergeWithLastSubmission: true },
      );
      return;
    }

    if (action === undefined) {
      if (req.method !== 'GET' && req.method !== 'HEAD')
        throw new IdpError('ERR_IDP_METHOD', 405, 'Use GET.');
      sendHtml(res, 200, loginPage({ action: action_, abortAction, clientName }));
      return;
    }

    if (req.method !== 'POST') throw new IdpError('ERR_IDP_METHOD', 405, 'Use POST.');
    const form = await readForm(req);
    const username = (form.get('username') ?? '').trim();
    const user = checkPassword(username, form.get('password') ?? '');
    if (!user) {
      logger.info(
        { client_id: clientId, username: findUser(username) ? username : '(unknown)' },
        'sign-in failed',
      );
      sendHtml(
        res,
        401,
        loginPage({
          action: action_,
          abortAction,
          clientName,
          username,
          error: 'Wrong username or password. Try again.',
        }),
      );
      return;
    }
    logger.info({ client_id: clientId, sub: user.username }, 'signed in');
    await provider.interactionFinished(
      req,
      res,
      { login: { accountId: user.username, amr: ['pwd'] } },
      { mergeWithLastSubmission: false },
    );
  }

  return {
    handle(req, res, path) {
      const match = interactionRoute.exec(path);
      if (!match) return false;
      interaction(req, res, match[1]!, match[2]).catch((error: unknown) => {
        const known = error instanceof IdpError ? error : undefined;
        if (!known) logger.error({ err: (error as Error)?.message }, 'interaction failed');
        if (res.headersSent) {
          res.end();
          return;
        }
        sendHtml(
          res,
          known?.status ?? 500,
          messagePage(known?.status === 400 ? 'Sign-in expired' : 'Something went wrong', [
            known?.message ?? 'The sign-in page failed. Try again from the app.',
          ]),
        );
      });
      return true;
    },
  };
}
