// @gatehouse/seal: AES-256-GCM sealing of small strings at rest, shared by the Gatehouse packages.

export { safeEqual } from './lib/safe-equal.js';
export type { Sealer, SealerOptions } from './lib/seal.js';
export { createSealer } from './lib/seal.js';
