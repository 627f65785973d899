/** Escapes text for HTML element content and double-quoted attribute values. */
export function escapeHtml(value: unknown): string {
  return String(value)
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&#39;');
}

const STYLE = `
:root{color-scheme:light;--ink:#1f2430;--muted:#5d6575;--line:#d9dde5;--brand:#2f5bd3;--brand-dark:#2349ad;--bad:#b42318;--bad-bg:#fef3f2}
*{box-sizing:border-box}
body{margin:0;min-height:100vh;display:grid;place-items:center;background:linear-gradient(160deg,#eef2fb,#f8f9fc 60%);font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink)}
main{width:min(380px,92vw);background:#fff;border:1px solid var(--line);border-radius:14px;box-shadow:0 10px 30px rgba(31,36,48,.08);padding:28px 28px 22px}
.brand{display:flex;align-items:center;gap:10px;font-weight:650;letter-spacing:.2px;margin-bottom:18px}
.brand .mark{width:28px;height:28px;border-radius:8px;background:var(--brand);color:#fff;display:grid;place-items:center;font-size:15px}
h1{font-size:1.3rem;margin:0 0 4px}
p.lead{margin:0 0 18px;color:var(--muted);font-size:.95rem}
label{display:block;font-size:.85rem;font-weight:600;margin:12px 0 4px}
input[type=text],input[type=password]{width:100%;padding:10px 12px;border:1px solid var(--line);border-radius:8px;font:inherit}
input:focus{outline:2px solid var(--brand);outline-offset:1px;border-color:transparent}
button{margin-top:18px;width:100%;padding:10px 12px;border:0;border-radius:8px;background:var(--brand);color:#fff;font:inherit;font-weight:600;cursor:pointer}
button:hover{background:var(--brand-dark)}
button.link{background:none;color:var(--muted);margin-top:6px;font-weight:400}
.error{background:var(--bad-bg);color:var(--bad);border:1px solid #fecdca;border-radius:8px;padding:8px 12px;font-size:.9rem;margin:0 0 8px}
.hint{margin-top:18px;padding-top:12px;border-top:1px solid var(--line);color:var(--muted);font-size:.8rem}
code{background:#f2f4f8;border-radius:4px;padding:1px 5px}
dl{font-size:.85rem;color:var(--muted)}dt{font-weight:600}dd{margin:0 0 6px;word-break:break-word}
`;

/** Page chrome shared by every IdP page. `body` must already be escaped. */
export function page(title: string, body: string, head = ''): string {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${escapeHtml(title)} · Gatehouse sample IdP</title>
<style>${STYLE}</style>
${head}
</head>
<body>
<main>
<div class="brand"><span class="mark">G</span><span>Gatehouse sample IdP</span></div>
${body}
</main>
</body>
</html>`;
}

export interface LoginPageInput {
  action: string;
  abortAction: string;
  clientName: string;
  username?: string;
  error?: string;
}

/** The sign-in form: inputs `username` and `password`, one submit button, an optional error. */
export function loginPage(input: LoginPageInput): string {
  const error = input.error ? `<p class="error" role="alert">${escapeHtml(input.error)}</p>` : '';
  return page(
    'Sign in',
    `<h1>Sign in</h1>
<p class="lead">to continue to <strong>${escapeHtml(input.clientName)}</strong></p>
${error}
<form method="post" action="${escapeHtml(input.action)}" autocomplete="off">
<label for="username">Username</label>
<input id="username" type="text" name="username" value="${escapeHtml(input.username ?? '')}" autocapitalize="none" spellcheck="false" required autofocus>
<label for="password">Password</label>
<input id="password" type="password" name="password" required>
<button type="submit">Sign in</button>
</form>
<form method="post" action="${escapeHtml(input.abortAction)}"><button class="link" type="submit">Cancel</button></form>
<p class="hint">Demo users: <code>alice</code> / <code>alice</code> and <code>bob</code> / <code>bob</code>.</p>`,
  );
}

/** A message page (errors, signed out). `lines` are escaped here. */
export function messagePage(title: string, lines: string[], details: Record<string, unknown> = {}): string {
  const entries = Object.entries(details).filter(([, v]) => v !== undefined && v !== '');
  const dl = entries.length
    ? `<dl>${entries.map(([k, v]) => `<dt>${escapeHtml(k)}</dt><dd>${escapeHtml(v)}</dd>`).join('')}</dl>`
    : '';
  return page(
    title,
    `<h1>${escapeHtml(title)}</h1>${lines.map((l) => `<p class="lead">${escapeHtml(l)}</p>`).join('')}${dl}`,
  );
}

/**
 * A form the browser submits by itself (used to skip the logout confirmation for first-party
 * clients). `data-autosubmit` lets the test browser do what the inline script does in a real one.
 */
export function autoSubmitPage(title: string, formHtml: string): string {
  return page(
    title,
    `<h1>${escapeHtml(title)}</h1><p class="lead">One moment…</p>${formHtml}<noscript><button type="submit" form="op.logoutForm">Continue</button></noscript>`,
    `<script>addEventListener('DOMContentLoaded',function(){document.forms[0].submit()})</script>`,
  );
}
