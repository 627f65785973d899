// Remote-API proxy (issue 6). Placeholder signatures agreed between the core and the proxy;
// the proxy's owner replaces the bodies.
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { Router } from 'express';
import type { BffContext } from '../context.js';

/** Which token a remote API route forwards. */
export type RemoteApiTokenType = 'user' | 'client' | 'user-or-client' | 'user-or-none' | 'none';

/** A remote API declared by the host: requests under `prefix` go to `upstream`. */
export interface RemoteApiOptions {
  /** Local path prefix, e.g. `/api/todos`. */
  prefix: string;
  /** Upstream origin plus base path, e.g. `http://127.0.0.1:4001/api/todos`. */
  upstream: string;
  /** Default `user`. */
  token?: RemoteApiTokenType;
  /** Require `X-CSRF: 1`. Default true. */
  csrf?: boolean;
  /** Upstream timeout in seconds. Default 30. */
  timeout?: number;
}

export interface ResolvedRemoteApi extends Readonly<Required<RemoteApiOptions>> {}

/** Validates the `remoteApis` option once at start-up; throws TypeError with the fix. */
export function resolveRemoteApis(
  input: readonly RemoteApiOptions[] | undefined,
): readonly ResolvedRemoteApi[] {
  return Object.freeze(
    (input ?? []).map((api) => Object.freeze({ token: 'user' as const, csrf: true, timeout: 30, ...api })),
  );
}

/** The Express router that proxies the declared remote APIs. */
export function createRemoteApiRouter(_ctx: BffContext): Router {
  return Router();
}

/** Handles WebSocket upgrades on declared prefixes; returns false when the path is not one. */
export function createUpgradeHandler(
  _ctx: BffContext,
): (req: IncomingMessage, socket: Duplex, head: Buffer) => boolean {
  return () => false;
}
