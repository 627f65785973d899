// Reading `WWW-Authenticate` challenges: the token endpoint's and the API's error codes.

/** The `error` parameter of a `WWW-Authenticate` challenge (RFC 6750 §3, RFC 9449 §7.1), if any. */
export function challengeErrors(header: string | null | undefined): string[] {
  if (!header) return [];
  return [...header.matchAll(/(?:^|[\s,])error\s*=\s*(?:"([^"]*)"|([^\s,]+))/gi)].map(
    (m) => m[1] ?? m[2] ?? '',
  );
}
