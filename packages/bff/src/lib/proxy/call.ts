// The forward and response-mapping steps of a remote-API call: one ProxyCall per call is the undici
// dispatch handler that sends the prepared request to the upstream (body streamed), streams the answer
// back to the browser with the header policy applied (headers.ts, redirects.ts, SECURITY P5, P8), and
// carries the retries: one forced refresh after an `invalid_token` 401 (P6), one fresh connection after
// a reused keep-alive connection was found closed, and for a DPoP-bound call (D1, sender.ts) one more
// send with the upstream's nonce after `use_dpop_nonce`; every send of a bound call gets a fresh proof.
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { Transform } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { NonceCache } from '../dpop/nonces.js';
import { type BffError, toBffError } from '../errors.js';
import { sendError } from '../http/problem.js';
import type { Logger } from '../logger.js';
import { filterResponseHeaders, isInvalidTokenChallenge } from './headers.js';
import { decideLocation } from './redirects.js';
import { type CompiledRoute, ERR } from './route.js';
import { authorizeBound, isNonceChallenge, type SenderBinding } from './sender.js';
import type { Upstreams } from './upstreams.js';

/** Connection-level failures that, before any response byte, mean "the upstream closed this socket". */
const RESET_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'UND_ERR_SOCKET']);
const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT', 'ETIMEDOUT']);

/** What every call of one engine shares (built once by the engine). */
export interface CallEnv {
  readonly upstreams: Upstreams;
  readonly logger: Logger;
  /** The BFF's public origin (P8 redirect decisions). */
  readonly publicOrigin: string;
  /** Headers helmet would set, added where the upstream set none. */
  readonly securityHeaders: Readonly<Record<string, string>>;
  /** The latest `DPoP-Nonce` of each upstream origin (D1). */
  readonly nonces: NonceCache;
  /** A user token for `session` after the upstream refused the last one (forced refresh, P6). */
  freshUserToken(session: unknown, route: CompiledRoute): Promise<string>;
  /** Answers `err` (and logs 5xx). */
  fail(res: ServerResponse, err: BffError, headers?: OutgoingHttpHeaders): void;
}

/** Why an upstream call was stopped by us (never shown to anyone; tells onResponseError what happened). */
class Stop extends Error {
  constructor(readonly why: 'client-gone' | 'body-too-large' | 'answered') {
    super(why);
  }
}

/**
 * One proxied call: the undici dispatch handler that streams the response to the browser, and the
 * state of its retries. One object per call, methods on the prototype.
 */
export class ProxyCall implements Dispatcher.DispatchHandler {
  controller: Dispatcher.DispatchController | undefined;
  /**
   * Reading the body of a 401 to throw it away, then: refresh and retry (`token`, P6), send again with
   * the upstream's nonce (`nonce`, D1), or answer 503 when the body cannot be sent again (`refused`).
   */
  discarding: false | 'token' | 'nonce' | 'refused' = false;
  /** A DPoP-bound call has had its one `use_dpop_nonce` retry. */
  nonceRetried = false;
  /** We answered or stopped the call ourselves; later callbacks only clean up. */
  settled = false;
  bodyTooLarge = false;
  resetRetried = false;
  /** The session of the P6 retry under way. */
  retrying: unknown;

  constructor(
    readonly env: CallEnv,
    readonly route: CompiledRoute,
    /** `originalUrl`: the request target as the browser sent it, when Express mounted the BFF. */
    readonly req: IncomingMessage & { readonly originalUrl?: string },
    readonly res: ServerResponse,
    readonly upstreamPath: string,
    readonly method: string,
    readonly headers: IncomingHttpHeaders,
    /** The session whose user token went out, on an idempotent body-less call: a forced refresh can help once (P6). */
    public retrySession: unknown,
    /** Idempotent and body-less: may be sent again once after a reset before any response byte. */
    readonly retryable: boolean,
    /** The DPoP binding of a call with a DPoP-bound user token (D1). */
    public sender: SenderBinding | undefined = undefined,
    /** The body to send again after `use_dpop_nonce`: null (none) or the bytes read; undefined: streamed. */
    readonly replayBody: Buffer | null | undefined = undefined,
  ) {
    // The browser went away (or the response finished): stop the upstream call if it still runs.
    // `on`, not `once`: 'close' fires once per response, and `once` would wrap the listener per call.
    res.on('close', () => {
      if (!res.writableFinished) this.stop('client-gone');
    });
  }

  stop(why: 'client-gone' | 'body-too-large' | 'answered'): void {
    this.settled = true;
    this.controller?.abort(new Stop(why));
  }

  send(body: Readable | Buffer | null, fresh: boolean): void {
    if (this.res.destroyed) return;
    const options: Dispatcher.DispatchOptions = {
      path: this.upstreamPath,
      method: this.method as Dispatcher.HttpMethod,
      headers: this.headers as Record<string, string | string[]>,
      body,
      headersTimeout: this.route.timeoutMs,
      // Silence between body bytes; undici stops counting while we pause it for a slow browser.
      bodyTimeout: this.route.bodyTimeoutMs,
    };
    if (fresh) this.env.upstreams.dispatchFresh(this.route.api.upstreamOrigin, options, this);
    else this.env.upstreams.dispatch(this.route.api.upstreamOrigin, options, this);
  }

  /** SECURITY P9 for chunked bodies: count as they stream; the chunk that crosses the limit is not sent. */
  limitedBody(): Readable {
    const limit = this.route.api.maxBodySize;
    let total = 0;
    const counter = new Transform({
      transform: (chunk: Buffer, _encoding, callback) => {
        total += chunk.length;
        if (total > limit) {
          this.bodyTooLarge = true;
          callback(new Stop('body-too-large'));
          return;
        }
        callback(null, chunk);
      },
    });
    counter.once('error', () => {
      this.req.unpipe(counter);
      // Read and drop the rest, so the browser gets to read the 413 (closing now would reset it).
      this.req.resume();
    });
    this.req.pipe(counter);
    return counter;
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.settled) controller.abort(new Stop('answered'));
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    status: number,
    headers: IncomingHttpHeaders,
  ): void {
    if (this.settled) return;
    if (this.sender) {
      // RFC 9449 §8.2: a server may send the next nonce on any answer.
      const nonce = headers['dpop-nonce'];
      if (typeof nonce === 'string') this.env.nonces.set(this.sender.origin, nonce);
      if (status === 401 && !this.nonceRetried && isNonceChallenge(headers['www-authenticate'])) {
        this.nonceRetried = true;
        this.discarding = this.replayBody === undefined ? 'refused' : 'nonce';
        return;
      }
    }
    if (status === 401 && this.retrySession !== undefined && invalidToken(headers['www-authenticate'])) {
      this.retrying = this.retrySession;
      this.retrySession = undefined;
      this.discarding = 'token'; // read the 401's body to the end so the socket goes back to the pool
      return;
    }
    const out = filterResponseHeaders(headers);
    // undici gives a repeated header as an array (decideLocation refuses or drops those).
    const location = headers.location as string | string[] | undefined;
    if (location !== undefined) {
      const decision = decideLocation(this.env.publicOrigin, this.route.locationRoute, status, location, {
        method: this.method,
        upstreamPath: this.upstreamPath,
        // The URL the browser resolves the header against (its own request, on the BFF's origin).
        publicUrl: `${this.env.publicOrigin}${this.req.originalUrl ?? this.req.url ?? '/'}`,
      });
      if (decision.kind === 'refuse') {
        this.settled = true;
        controller.abort(new Stop('answered'));
        this.env.logger.warn({ prefix: this.route.api.prefix, status }, 'remote API redirect refused');
        sendError(this.res, ERR.redirect);
        return;
      }
      if (decision.kind === 'rewrite') out.location = decision.location;
      else if (decision.kind === 'drop') delete out.location;
    }
    const { securityHeaders } = this.env;
    for (const name in securityHeaders) if (out[name] === undefined) out[name] = securityHeaders[name];
    out['x-content-type-options'] = 'nosniff';
    delete out['x-powered-by'];
    // Express may have set X-Powered-By on the response before the BFF took it.
    if (this.res.hasHeader('x-powered-by')) this.res.removeHeader('x-powered-by');
    this.res.writeHead(status, out);
    // Node sends the head with the first body chunk; an event stream's first event may be minutes away,
    // and EventSource reports "open" only when the head arrives.
    const type = out['content-type'];
    if (typeof type === 'string' && type.startsWith('text/event-stream')) this.res.flushHeaders();
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.discarding || this.settled) return;
    if (!this.res.write(chunk)) {
      controller.pause();
      this.res.once('drain', () => controller.resume());
    }
  }

  onResponseEnd(): void {
    if (this.discarding) {
      this.afterDiscard();
      return;
    }
    if (!this.settled) this.res.end();
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    if (this.discarding) {
      // The 401 itself arrived; only its body broke off. The retry still applies.
      this.afterDiscard();
      return;
    }
    if (this.bodyTooLarge) {
      this.settled = true;
      this.env.fail(this.res, ERR.bodyTooLarge);
      return;
    }
    if (this.settled) return;
    const res = this.res;
    if (res.headersSent) {
      // The upstream broke off mid-body: cut the browser's response too, a short body must not look complete.
      res.destroy();
      return;
    }
    const code = (err as { code?: unknown }).code;
    if (this.retryable && !this.resetRetried && typeof code === 'string' && RESET_CODES.has(code)) {
      // A keep-alive connection the upstream closed just as it was reused: nothing was answered, the
      // call is idempotent and has no body, so send it once more on a connection opened for it.
      this.resetRetried = true;
      this.env.logger.debug(
        { prefix: this.route.api.prefix, code },
        'remote API connection reset; retrying once',
      );
      this.authorize(); // a new proof: the upstream may have seen the first one's jti
      this.send(null, true);
      return;
    }
    this.settled = true;
    this.env.logger.warn({ prefix: this.route.api.prefix, code }, 'remote API call failed');
    sendError(res, typeof code === 'string' && TIMEOUT_CODES.has(code) ? ERR.timeout : ERR.unavailable);
  }

  /** What follows a discarded 401: the retry it asked for, or the 503 when the body is gone. */
  afterDiscard(): void {
    const why = this.discarding;
    this.discarding = false;
    if (why === 'token') {
      void this.retryWithFreshToken(this.retrying);
    } else if (why === 'nonce') {
      this.authorize();
      this.send(this.replayBody ?? null, false);
    } else {
      this.settled = true;
      this.env.fail(this.res, ERR.dpopNonce);
    }
  }

  /** D1: a fresh proof (new `jti`, the origin's latest nonce) before each send of a DPoP-bound call. */
  authorize(): void {
    if (this.sender) authorizeBound(this.headers, this.sender, this.method, this.env.nonces);
  }

  /** SECURITY P6: one forced refresh, one retry; the request has no body, so nothing was buffered. */
  async retryWithFreshToken(session: unknown): Promise<void> {
    let token: string;
    try {
      token = await this.env.freshUserToken(session, this.route);
    } catch (err) {
      this.settled = true;
      this.env.fail(this.res, toBffError(err));
      return;
    }
    if (this.sender) {
      this.sender = { ...this.sender, token };
      this.authorize();
    } else {
      this.headers.authorization = `Bearer ${token}`;
    }
    this.send(null, false);
  }
}

/** True when any `WWW-Authenticate` challenge says `invalid_token` (RFC 6750 §3.1). */
function invalidToken(header: string | string[] | undefined): boolean {
  if (Array.isArray(header)) return header.some((value) => isInvalidTokenChallenge(value));
  return isInvalidTokenChallenge(header);
}
