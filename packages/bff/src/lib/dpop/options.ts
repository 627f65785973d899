// The `dpop` option of createBff and its resolved form (validated once at start-up).
import { fail } from '../config-checks.js';
import { DPOP_ALGORITHMS, type DpopAlgorithm } from './key.js';

export type { DpopAlgorithm } from './key.js';

/** The object form of the `dpop` option. */
export interface DpopOptions {
  /** Proof algorithm of the session keys. Default `ES256`. */
  alg?: DpopAlgorithm;
}

/** The resolved `dpop` option: undefined when DPoP is off. */
export interface ResolvedDpop {
  readonly alg: DpopAlgorithm;
}

/** Validates `dpop` (`true`, `false`, `{ alg }`); throws a TypeError that says the fix. */
export function resolveDpop(value: boolean | DpopOptions | undefined): ResolvedDpop | undefined {
  if (value === undefined || value === false) return undefined;
  if (value === true) return Object.freeze({ alg: 'ES256' });
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    fail(`\`dpop\` must be true, false or { alg } (got ${JSON.stringify(value)})`);
  }
  for (const key of Object.keys(value)) {
    if (key !== 'alg') fail(`unknown option \`dpop.${key}\`; the only one is \`alg\``);
  }
  const alg = value.alg ?? 'ES256';
  if (!DPOP_ALGORITHMS.includes(alg)) {
    fail(`\`dpop.alg\` must be one of ${DPOP_ALGORITHMS.join(', ')} (got ${JSON.stringify(alg)})`);
  }
  return Object.freeze({ alg });
}
