// Sites as browsers define them for SameSite cookies and `Sec-Fetch-Site`: scheme plus registrable
// domain (the public suffix list, through tough-cookie), or the host itself for IPs and localhost.
import { isIP } from 'node:net';
import { getPublicSuffix } from 'tough-cookie';

/** How the request relates to the page that makes it, for SameSite and `Sec-Fetch-Site`. */
export type RequestSite = 'same-origin' | 'same-site' | 'cross-site';

/** The "site" of a URL for SameSite: scheme + registrable domain (the host itself for IPs/localhost). */
export function siteOf(url: URL): string {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const domain = isIP(host) || !host.includes('.') ? host : (getPublicSuffix(host) ?? host);
  return `${url.protocol}//${domain}`;
}

/** How a request from page `from` to `to` relates, as `Sec-Fetch-Site` says it. */
export function relation(from: URL, to: URL): RequestSite {
  if (from.origin === to.origin) return 'same-origin';
  return siteOf(from) === siteOf(to) ? 'same-site' : 'cross-site';
}
