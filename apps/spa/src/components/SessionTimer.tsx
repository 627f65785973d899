import { useEffect, useRef, useState } from 'react';

interface SessionTimerProps {
  /** `bff:session_expires_in` as reported at `fetchedAt`. */
  expiresIn: number | undefined;
  /** When `/bff/user` answered (ms since epoch). */
  fetchedAt: number;
  /** Called once when the countdown reaches zero, so the app can ask the BFF again. */
  onExpired: () => void;
}

/** `3725` → `1:02:05`, `65` → `1:05`. */
export function formatDuration(totalSeconds: number): string {
  const s = Math.max(0, Math.floor(totalSeconds));
  const hours = Math.floor(s / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  const seconds = String(s % 60).padStart(2, '0');
  return hours > 0 ? `${hours}:${String(minutes).padStart(2, '0')}:${seconds}` : `${minutes}:${seconds}`;
}

export function SessionTimer({ expiresIn, fetchedAt, onExpired }: SessionTimerProps) {
  const [now, setNow] = useState(() => Date.now());

  useEffect(() => {
    const timer = window.setInterval(() => setNow(Date.now()), 1000);
    return () => window.clearInterval(timer);
  }, []);

  const remaining = expiresIn === undefined ? undefined : expiresIn - (now - fetchedAt) / 1000;
  const expired = remaining !== undefined && remaining <= 0;

  // Ask once per reading: the countdown keeps ticking while the re-check is on its way.
  const askedFor = useRef<number | null>(null);
  useEffect(() => {
    if (expired && askedFor.current !== fetchedAt) {
      askedFor.current = fetchedAt;
      onExpired();
    }
  }, [expired, fetchedAt, onExpired]);

  if (remaining === undefined) {
    return (
      <span className="pill" data-testid="session-remaining">
        session lifetime not reported
      </span>
    );
  }
  const low = remaining < 60;
  return (
    <span
      className={low ? 'pill pill-warn' : 'pill'}
      data-testid="session-remaining"
      title="Remaining lifetime of the BFF session (bff:session_expires_in), counted down in the browser"
    >
      <span aria-hidden="true" className="dot" />
      Session ends in{' '}
      <time dateTime={`PT${Math.max(0, Math.floor(remaining))}S`}>{formatDuration(remaining)}</time>
    </span>
  );
}
