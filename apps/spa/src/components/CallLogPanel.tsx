import { useState, useSyncExternalStore } from 'react';
import { todos } from '../api/bff';
import { callLog } from '../api/callLog';
import type { TokenBinding } from '../api/claims';
import type { CallRecord } from '../api/types';

const BURST = 5;

function statusClass(record: CallRecord): string {
  if (record.via === 'iframe') return 'status status-frame';
  if (record.status === null) return 'status status-bad';
  if (record.status < 300) return 'status status-ok';
  if (record.status === 401) return 'status status-warn';
  return 'status status-bad';
}

function time(date: Date): string {
  return date.toLocaleTimeString([], {
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
    hour12: false,
  });
}

interface CallLogPanelProps {
  /** How the BFF sends the session's token upstream; undefined without a session (no burst button). */
  binding: TokenBinding | undefined;
}

/** One line on what goes upstream with each API call: a DPoP-bound token and a proof, or a Bearer token. */
function BindingNote({ binding }: { binding: TokenBinding }) {
  if (binding.type === 'Bearer') {
    return (
      <p className="small token-binding" data-testid="token-binding" data-token-type="Bearer">
        The BFF sends the API a <strong>Bearer</strong> access token: whoever holds a copy can use it.
      </p>
    );
  }
  return (
    <p className="small token-binding" data-testid="token-binding" data-token-type="DPoP">
      The BFF sends the API a <strong>DPoP-bound</strong> access token (sender-constrained): with every call
      it signs a fresh proof with this session's private key, which never leaves the BFF, so a copied token
      alone is useless. Key thumbprint (the token's <code>cnf.jkt</code>):{' '}
      <code className="jkt" data-testid="dpop-jkt">
        {binding.jkt}
      </code>
    </p>
  );
}

export function CallLogPanel({ binding }: CallLogPanelProps) {
  const signedIn = binding !== undefined;
  const records = useSyncExternalStore(callLog.subscribe, callLog.getSnapshot);
  const [bursting, setBursting] = useState(false);

  // Several calls at once, as a busy SPA makes them. When the access token has just expired, the BFF
  // still asks the IdP for a new one only once (single-flight refresh) and all calls succeed.
  const burst = async () => {
    setBursting(true);
    await Promise.allSettled(Array.from({ length: BURST }, () => todos.list()));
    setBursting(false);
  };

  return (
    <aside className="card log" aria-labelledby="log-title" data-testid="call-log">
      <div className="card-head">
        <h2 id="log-title">What just happened</h2>
        <div className="card-head-actions">
          {signedIn && (
            <button
              type="button"
              className="button button-ghost button-small"
              onClick={() => void burst()}
              disabled={bursting}
              data-testid="burst"
              title={`Send ${BURST} GET /api/todos calls at the same time`}
            >
              {bursting ? 'Sending…' : `${BURST} calls at once`}
            </button>
          )}
          <button
            type="button"
            className="button button-ghost button-small"
            onClick={() => callLog.clear()}
            disabled={records.length === 0}
          >
            Clear
          </button>
        </div>
      </div>
      <p className="muted small">
        Every request this page makes, newest first. None of them carries a token: the BFF adds the access
        token on the server and refreshes it when it expires, so a refresh shows up here only as a slightly
        slower call, never as a failure.
      </p>
      {binding && <BindingNote binding={binding} />}
      {records.length === 0 ? (
        <p className="empty">No calls yet.</p>
      ) : (
        <ol className="log-list" data-testid="call-log-list" aria-live="off">
          {records.map((record) => (
            <li
              key={record.id}
              className="log-entry"
              data-testid="call-log-entry"
              data-method={record.method}
              data-path={record.path}
              data-status={record.via === 'iframe' ? 'iframe' : (record.status ?? 'network-error')}
            >
              <span className={`method method-${record.method.toLowerCase()}`}>{record.method}</span>
              <code className="log-path" title={record.path}>
                {record.path}
              </code>
              <span className={statusClass(record)}>
                {record.via === 'iframe' ? 'frame' : (record.status ?? 'ERR')}
              </span>
              <span className="log-duration">{record.durationMs} ms</span>
              <span className="log-meta">
                <time dateTime={record.startedAt.toISOString()}>{time(record.startedAt)}</time>
                {record.note && <span className="log-note"> · {record.note}</span>}
                {binding?.type === 'DPoP' && record.path.startsWith('/api/') && (
                  <span className="log-note" title="The BFF signed a DPoP proof for this call">
                    {' '}
                    · DPoP proof
                  </span>
                )}
              </span>
            </li>
          ))}
        </ol>
      )}
    </aside>
  );
}
