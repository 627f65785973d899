import { claimValue, formatClaimValue, sessionExpiresIn } from '../api/claims';
import type { Claim } from '../api/types';
import { SessionTimer } from './SessionTimer';

interface ProfileProps {
  claims: Claim[];
  fetchedAt: number;
  /** Ask `/bff/user` again (the countdown reached zero). */
  onRecheck: () => void;
}

export function Profile({ claims, fetchedAt, onRecheck }: ProfileProps) {
  const name = claimValue(claims, 'name') ?? claimValue(claims, 'sub') ?? 'there';
  const email = claimValue(claims, 'email');
  const userClaims = claims.filter((claim) => !claim.type.startsWith('bff:'));
  const bffClaims = claims.filter((claim) => claim.type.startsWith('bff:'));

  return (
    <section className="card" data-testid="signed-in" aria-labelledby="welcome-title">
      <div className="profile-head">
        <div>
          <h1 id="welcome-title">
            Hello, <span data-testid="user-name">{name}</span>
          </h1>
          {email && <p className="muted">{email}</p>}
        </div>
        <SessionTimer expiresIn={sessionExpiresIn(claims)} fetchedAt={fetchedAt} onExpired={onRecheck} />
      </div>
      <details className="claims" open>
        <summary>
          Your claims <span className="muted small">from GET /bff/user</span>
        </summary>
        <div className="table-wrap">
          <table data-testid="claims-table">
            <caption className="sr-only">Claims of the signed-in user</caption>
            <thead>
              <tr>
                <th scope="col">Claim</th>
                <th scope="col">Value</th>
              </tr>
            </thead>
            <tbody>
              {[...userClaims, ...bffClaims].map((claim) => (
                <tr
                  key={`${claim.type}=${JSON.stringify(claim.value)}`}
                  className={claim.type.startsWith('bff:') ? 'bff-claim' : ''}
                >
                  <th scope="row">
                    <code>{claim.type}</code>
                  </th>
                  <td data-claim={claim.type}>{formatClaimValue(claim.type, claim.value)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
        <p className="muted small">
          <code>bff:</code> claims come from the BFF itself: the sign-out link (it carries the session id so
          no other site can sign you out) and the session's remaining lifetime.
        </p>
      </details>
    </section>
  );
}
