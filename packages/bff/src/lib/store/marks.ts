// Keys of the single-use marks (SessionStore.claimOnce) begin with their purpose. A store that bounds
// its marks bounds each purpose on its own (SECURITY S6): anyone can make a login-state mark (one per
// callback with a fresh transaction cookie from /bff/login), and those must never crowd out the
// back-channel logout's jti marks (B2), which only the OP can make.

/** Login-state marks: the callback claims its state once (L4). */
export const LOGIN_STATE_MARK = 'login-state:';
/** Marks taken through the extension context (`bff.context.claimOnce`) are stored under this prefix. */
export const EXTENSION_MARK = 'once:';
/** The back-channel logout's `jti` marks, taken through the extension context (B2). */
export const LOGOUT_JTI_MARK = 'backchannel:jti:';

/** The purposes a store tells apart; anything else shares `other`. */
export type MarkPurpose = 'login-state' | 'logout-jti' | 'other';

/** The purpose of a mark, from its key. */
export function markPurpose(key: string): MarkPurpose {
  if (key.startsWith(LOGIN_STATE_MARK)) return 'login-state';
  if (key.startsWith(EXTENSION_MARK) && key.startsWith(LOGOUT_JTI_MARK, EXTENSION_MARK.length))
    return 'logout-jti';
  return 'other';
}
