import { loginUrl } from '../api/bff';

interface SignedOutProps {
  /** True when a call was answered 401 after the user had been signed in. */
  sessionEnded: boolean;
  /** True while the hidden `prompt=none` iframe is still out. */
  checkingSilently: boolean;
  /** The `error` code of a failed or cancelled sign-in, if the BFF sent us back with one. */
  loginError?: string | undefined;
}

export function SignedOut({ sessionEnded, checkingSilently, loginError }: SignedOutProps) {
  return (
    <section className="card hero" data-testid="signed-out" aria-labelledby="signed-out-title">
      {sessionEnded && (
        <p className="notice notice-warn" role="alert" data-testid="session-ended">
          Your session ended — sign in again.
        </p>
      )}
      {loginError && !sessionEnded && (
        <p className="notice notice-error" role="alert" data-testid="login-error">
          {loginError === 'access_denied'
            ? 'Sign-in was cancelled.'
            : 'Sign-in did not complete. Please try again.'}{' '}
          <span className="muted small">({loginError})</span>
        </p>
      )}
      <h1 id="signed-out-title">You are signed out</h1>
      <p className="lead">
        This app never holds an OAuth token. A <strong>backend-for-frontend</strong> (BFF) on this same origin
        signs you in with the identity provider, keeps the tokens on the server, and calls the API for you.
      </p>
      <ol className="steps">
        <li>
          <strong>Sign in</strong> sends you to the identity provider. The BFF runs the authorization-code
          flow with PKCE.
        </li>
        <li>
          The BFF stores the tokens server-side and gives your browser only an <code>HttpOnly</code>,{' '}
          <code>SameSite=Strict</code> session cookie.
        </li>
        <li>
          This page calls <code>/bff/user</code> and <code>/api/todos</code> with an <code>X-CSRF: 1</code>{' '}
          header. The BFF attaches the access token and refreshes it when it expires.
        </li>
      </ol>
      <div className="actions">
        <a className="button button-primary" href={loginUrl('/')} data-testid="sign-in">
          Sign in
        </a>
        <span className="muted small" data-testid="silent-status">
          {checkingSilently ? 'Checking for an existing sign-in…' : 'Demo users: alice / alice, bob / bob'}
        </span>
      </div>
    </section>
  );
}
