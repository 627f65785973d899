/**
 * The sample IdP's one error class: its own pages (login form) and its data folder report with it.
 * `code` is stable; `status` is the HTTP status a page uses. Protocol errors stay oidc-provider's.
 */
export class IdpError extends Error {
  readonly code: string;
  readonly status: number;
  constructor(code: string, status: number, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'IdpError';
    this.code = code;
    this.status = status;
  }
}
