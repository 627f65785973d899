// Runs the sample IdP in its own process for the proxy benchmark. oidc-provider keeps an
// AsyncLocalStorage, and while one is active every promise in the process pays for async hooks: in the
// benchmark's process that would tax the promise-heavier cases (the BFF) more than the bare proxies.
// Started by proxy.ts with the IdP options as JSON; prints `{ "issuer": … }` once listening.
import { startIdp } from '@gatehouse/testing';

const idp = await startIdp(JSON.parse(process.argv[2] ?? '{}') as Parameters<typeof startIdp>[0]);
process.stdout.write(`${JSON.stringify({ issuer: idp.issuer })}\n`);
process.on('SIGTERM', () => {
  void idp.close().finally(() => process.exit(0));
});
