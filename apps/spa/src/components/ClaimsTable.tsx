import { formatClaimValue } from '../api/claims';
import type { Claim } from '../api/types';

/** Every claim `/bff/user` returned: the user's first, then the BFF's own `bff:` claims. */
export function ClaimsTable({ claims }: { claims: Claim[] }) {
  const ordered = [
    ...claims.filter((claim) => !claim.type.startsWith('bff:')),
    ...claims.filter((claim) => claim.type.startsWith('bff:')),
  ];
  return (
    <section className="card" aria-labelledby="claims-title" data-testid="claims">
      <details className="claims" open>
        <summary>
          <h2 id="claims-title">Your claims</h2>
          <span className="muted small">GET /bff/user</span>
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
              {ordered.map((claim) => (
                <tr
                  key={`${claim.type}=${JSON.stringify(claim.value)}`}
                  className={claim.type.startsWith('bff:') ? 'bff-claim' : undefined}
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
          <code>bff:</code> claims come from the BFF itself: the sign-out link (it carries the identity
          provider's <code>sid</code>, which another site cannot know, so no other site can sign you out) and
          the session's remaining lifetime in seconds; with DPoP, the token type and the thumbprint of the
          session's key (public: the private key never leaves the BFF). The BFF's own session id stays in the
          HttpOnly cookie.
        </p>
      </details>
    </section>
  );
}
