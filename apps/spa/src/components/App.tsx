import { useCallback, useEffect, useRef, useState } from 'react';
import { BffCallError, getUser } from '../api/bff';
import { claimValue, tokenBinding } from '../api/claims';
import type { Claim } from '../api/types';
import { trySilentLogin } from '../auth/silentLogin';
import { CallLogPanel } from './CallLogPanel';
import { ClaimsTable } from './ClaimsTable';
import { Header } from './Header';
import { Profile } from './Profile';
import { SignedOut } from './SignedOut';
import { TodoList } from './TodoList';

type AuthState =
  | { status: 'checking' }
  | { status: 'signed-out'; sessionEnded: boolean; silent: 'running' | 'done' }
  | { status: 'signed-in'; claims: Claim[]; fetchedAt: number }
  | { status: 'error'; message: string };

/**
 * A failed or cancelled sign-in comes back as `/?error=<code>` from the BFF's callback. Read it once,
 * then drop it from the address bar so a reload does not show it again. React escapes the text.
 */
function takeLoginError(): string | undefined {
  const url = new URL(window.location.href);
  const error = url.searchParams.get('error');
  if (error === null) return undefined;
  url.searchParams.delete('error');
  url.searchParams.delete('error_description');
  window.history.replaceState(null, '', `${url.pathname}${url.search}${url.hash}`);
  return error.slice(0, 100);
}

export function App() {
  const [auth, setAuth] = useState<AuthState>({ status: 'checking' });
  const [loginError] = useState(takeLoginError);
  const started = useRef(false);

  /** Asks the BFF who we are; `silent` also tries a `prompt=none` login when anonymous. */
  const loadUser = useCallback(async (silent: boolean) => {
    try {
      const claims = await getUser();
      if (claims) {
        setAuth({ status: 'signed-in', claims, fetchedAt: Date.now() });
        return;
      }
      if (!silent) {
        setAuth({ status: 'signed-out', sessionEnded: true, silent: 'done' });
        return;
      }
      setAuth({ status: 'signed-out', sessionEnded: false, silent: 'running' });
      if (await trySilentLogin()) {
        const after = await getUser();
        if (after) {
          setAuth({ status: 'signed-in', claims: after, fetchedAt: Date.now() });
          return;
        }
      }
      setAuth({ status: 'signed-out', sessionEnded: false, silent: 'done' });
    } catch (error) {
      const message = error instanceof BffCallError ? error.message : 'Unexpected error';
      setAuth({ status: 'error', message });
    }
  }, []);

  useEffect(() => {
    // StrictMode runs effects twice in development; one check on load is enough.
    if (started.current) return;
    started.current = true;
    void loadUser(true);
  }, [loadUser]);

  /** Any call answered 401: the BFF session is gone (signed out elsewhere, expired, revoked). */
  const onSessionEnded = useCallback(() => {
    setAuth({ status: 'signed-out', sessionEnded: true, silent: 'done' });
  }, []);

  const recheck = useCallback(() => void loadUser(false), [loadUser]);

  const claims = auth.status === 'signed-in' ? auth.claims : undefined;
  const name = claims ? (claimValue(claims, 'name') ?? claimValue(claims, 'sub')) : undefined;
  const logoutUrl = claims ? claimValue(claims, 'bff:logout_url') : undefined;

  return (
    <div className="shell">
      <Header name={name} logoutUrl={logoutUrl} />
      <div className="layout">
        <main className="content" id="main" aria-live="polite" aria-busy={auth.status === 'checking'}>
          {auth.status === 'checking' && (
            <section className="card" data-testid="checking">
              <p className="muted">Asking the BFF whether you are signed in…</p>
            </section>
          )}
          {auth.status === 'error' && (
            <section className="card card-error" role="alert" data-testid="app-error">
              <h2>The BFF did not answer</h2>
              <p>{auth.message}</p>
              <button type="button" className="button" onClick={() => void loadUser(true)}>
                Try again
              </button>
            </section>
          )}
          {auth.status === 'signed-out' && (
            <SignedOut
              sessionEnded={auth.sessionEnded}
              checkingSilently={auth.silent === 'running'}
              loginError={loginError}
            />
          )}
          {auth.status === 'signed-in' && (
            <>
              <Profile claims={auth.claims} fetchedAt={auth.fetchedAt} onRecheck={recheck} />
              <TodoList onSessionEnded={onSessionEnded} />
              <ClaimsTable claims={auth.claims} />
            </>
          )}
        </main>
        <CallLogPanel binding={claims ? tokenBinding(claims) : undefined} />
      </div>
      <footer className="footer">
        <p>
          Gatehouse sample SPA · talks only to <code>{window.location.origin}</code> · tokens stay in the BFF
        </p>
      </footer>
    </div>
  );
}
