import { claimValue, sessionExpiresIn } from '../api/claims';
import type { Claim } from '../api/types';
import { SessionTimer } from './SessionTimer';

interface ProfileProps {
  claims: Claim[];
  fetchedAt: number;
  /** Ask `/bff/user` again (the countdown reached zero). */
  onRecheck: () => void;
}

/** The welcome card: who is signed in and how long the BFF session has left. */
export function Profile({ claims, fetchedAt, onRecheck }: ProfileProps) {
  const name = claimValue(claims, 'name') ?? claimValue(claims, 'sub') ?? 'there';
  const email = claimValue(claims, 'email');

  return (
    <section className="card" data-testid="signed-in" aria-labelledby="welcome-title">
      <div className="profile-head">
        <div>
          <h1 id="welcome-title">
            Hello, <span data-testid="user-name">{name}</span>
          </h1>
          {email && (
            <p className="muted" data-testid="user-email">
              {email}
            </p>
          )}
        </div>
        <SessionTimer expiresIn={sessionExpiresIn(claims)} fetchedAt={fetchedAt} onExpired={onRecheck} />
      </div>
      <p className="muted small profile-note">
        You are signed in with a BFF session cookie. The tokens the identity provider issued stay on the
        server; this page only ever sees the claims below.
      </p>
    </section>
  );
}
