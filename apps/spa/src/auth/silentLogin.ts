// Silent login: load /bff/silent-login in a hidden iframe. The BFF sends the IdP a `prompt=none`
// request; if the IdP still has a session, the BFF gets a code without showing anything and sets
// its session cookie. Either way the callback page posts `{ source: 'bff-silent-login', isLoggedIn }`
// to this window. Browsers that block third-party cookies make the IdP answer `login_required`,
// so this is a convenience, never something the app depends on.

const TIMEOUT_MS = 5000;

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
    const finish = (isLoggedIn: boolean) => {
      if (settled) return;
      settled = true;
      window.removeEventListener('message', onMessage);
      window.clearTimeout(timer);
      iframe.remove();
      resolve(isLoggedIn);
    };
    const onMessage = (event: MessageEvent) => {
      // Only our own origin's callback page may tell us the outcome.
      if (event.origin !== window.location.origin || event.source !== iframe.contentWindow) return;
      if (isSilentLoginMessage(event.data)) finish(event.data.isLoggedIn);
    };
    const timer = window.setTimeout(() => finish(false), timeoutMs);

    window.addEventListener('message', onMessage);
    iframe.src = '/bff/silent-login';
    document.body.append(iframe);
  });
}
