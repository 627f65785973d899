// Silent login: load /bff/silent-login in a hidden iframe. The BFF sends the IdP a `prompt=none`
// request; if the IdP still has a session, the BFF gets a code without showing anything and sets
// its session cookie. Either way the callback page posts `{ source: 'bff-silent-login', isLoggedIn }`
// to this window. Browsers that block third-party cookies make the IdP answer `login_required`,
// so this is a convenience, never something the app depends on.

import { callLog } from '../api/callLog';

const TIMEOUT_MS = 8000;

interface SilentLoginMessage {
  source: 'bff-silent-login';
  isLoggedIn: boolean;
}

function isSilentLoginMessage(data: unknown): data is SilentLoginMessage {
  return (
    typeof data === 'object' &&
    data !== null &&
    (data as Record<string, unknown>).source === 'bff-silent-login' &&
    typeof (data as Record<string, unknown>).isLoggedIn === 'boolean'
  );
}

/** Resolves true when the BFF now has a session; false on `login_required`, errors or timeout. */
export function trySilentLogin(timeoutMs = TIMEOUT_MS): Promise<boolean> {
  return new Promise((resolve) => {
    const iframe = document.createElement('iframe');
    iframe.title = 'silent sign-in';
    iframe.hidden = true;
    iframe.setAttribute('aria-hidden', 'true');
    iframe.tabIndex = -1;
    iframe.dataset.testid = 'silent-login-frame';

    let settled = false;
    const startedAt = new Date();
    const t0 = performance.now();
    const finish = (isLoggedIn: boolean, note: string) => {
      if (settled) return;
      settled = true;
      callLog.add({
        method: 'GET',
        path: '/bff/silent-login',
        status: null,
        via: 'iframe',
        durationMs: Math.round(performance.now() - t0),
        startedAt,
        note,
      });
      window.removeEventListener('message', onMessage);
      window.clearTimeout(timer);
      iframe.remove();
      resolve(isLoggedIn);
    };
    const onMessage = (event: MessageEvent) => {
      // Only our own origin's callback page may tell us the outcome.
      if (event.origin !== window.location.origin || event.source !== iframe.contentWindow) return;
      if (isSilentLoginMessage(event.data)) {
        const { isLoggedIn } = event.data;
        finish(isLoggedIn, isLoggedIn ? 'silent login: signed in' : 'silent login: no IdP session');
      }
    };
    const timer = window.setTimeout(() => finish(false, 'silent login: no answer (timed out)'), timeoutMs);

    window.addEventListener('message', onMessage);
    iframe.src = '/bff/silent-login';
    document.body.append(iframe);
  });
}
