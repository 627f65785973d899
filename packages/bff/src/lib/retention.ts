// What one createBff instance still keeps in this process for a session, beside the store: its
// decrypted token record or refresh back-off, its rate-bucket keys, its verified cookie. Not part of the
// package's API (index.ts does not export it): the tests read it to show that none of this outlives a
// session that ended here, whichever way it ended.

/** The in-process structures that hold something of a session. */
export type RetainedPart = 'tokens' | 'rate keys' | 'verified cookie';

const probes = new WeakMap<object, (sessionId: string) => RetainedPart[]>();

/** Called by createBff for the instance it returns. */
export function registerRetention(bff: object, probe: (sessionId: string) => RetainedPart[]): void {
  probes.set(bff, probe);
}

/** The parts of `bff` (a createBff instance) holding something of session `sessionId`; [] when none. */
export function retainedBy(bff: object, sessionId: string): RetainedPart[] {
  const probe = probes.get(bff);
  if (!probe) throw new TypeError('retainedBy: not a createBff instance of this module');
  return probe(sessionId);
}
