// OIDC Back-Channel Logout 1.0 endpoint (issue 6). Placeholder signatures agreed between the core and
// the back-channel module; the module's owner replaces the bodies.
import { Router } from 'express';
import type { BffContext } from '../context.js';

export interface BackchannelOptions {
  /** Require `typ: logout+jwt` (strict mode; the OpenID conformance suite omits typ). Default false. */
  requireLogoutTyp?: boolean;
}

export interface ResolvedBackchannelOptions extends Readonly<Required<BackchannelOptions>> {}

/** Validates the `backchannel` option once at start-up. */
export function resolveBackchannelOptions(input: BackchannelOptions | undefined): ResolvedBackchannelOptions {
  return Object.freeze({ requireLogoutTyp: false, ...input });
}

/** Router serving `POST /bff/backchannel` (mounted by createBff). */
export function createBackchannelRouter(_ctx: BffContext): Router {
  return Router();
}
