// The BFF's own path namespace, in a leaf module: the entry matcher (routing.ts) routes it, and the
// proxy (proxy/redirects.ts) must never send the browser into it.

/** The BFF's own namespace: its endpoints live here, remote-API prefixes may not (proxy/options.ts). */
export const BFF_NAMESPACE = '/bff';
