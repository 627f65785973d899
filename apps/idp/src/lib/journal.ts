// Write-through persistence of the IdP's store: one append-only JSON-lines file in the data folder,
// replayed at start and rewritten compacted, so a killed IdP keeps every grant, session and token
// it handed out.
import {
  closeSync,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import type { AdapterPayload } from 'oidc-provider';
import { IdpError } from './errors.js';

/** File (inside `dataDir`) with the store's records, one JSON object per line. */
export const STORE_FILE = 'idp-store.jsonl';
/** File (inside `dataDir`) holding the pid of the process that writes {@link STORE_FILE}. */
export const LOCK_FILE = 'idp-store.lock';

/** One change of the store. `e` is the expiry in epoch milliseconds, `null` for none. */
export type JournalOp =
  | { op: 'set'; k: string; p: AdapterPayload; e: number | null }
  | { op: 'del'; k: string }
  | { op: 'consume'; k: string; t: number }
  | { op: 'revoke'; g: string };

/** How the journal reaches the store it persists. */
export interface JournalHooks {
  /** Applies a replayed change to the in-memory store. */
  apply(op: JournalOp): void;
  /** Every live record as a `set` change (what a compacted file holds). */
  snapshot(): Iterable<JournalOp>;
  /** Where replay reports what it found or recovered from (counts, never a payload). */
  logger: { info(obj: object, msg?: string): void; warn(obj: object, msg?: string): void };
}

// Data folders opened by this process: a second IdP on the same folder would interleave writes.
const openDirs = new Set<string>();

// Compact once the file holds this many lines more than there are live records (and at start).
const COMPACT_SLACK = 1024;

/**
 * The append-only file behind a persistent {@link IdpStore}.
 *
 * Every change is written with a synchronous `write(2)` before the store applies it and before
 * oidc-provider answers, so whatever a client has received is in the file. A SIGKILL cannot lose
 * it: the data is in the kernel's page cache, not in this process. (No fsync per change: that would
 * protect against a power cut, which this sample IdP does not promise.) A line torn by a crash
 * mid-write has no newline and was never acknowledged, so replay drops it.
 */
export class StoreJournal {
  readonly #file: string;
  readonly #dir: string;
  readonly #lockFile: string;
  readonly #hooks: JournalHooks;
  #fd = -1;
  /** Bytes known to end on a whole line (a failed write is cut back to here). */
  #size = 0;
  #lines = 0;
  #closed = false;

  private constructor(dir: string, hooks: JournalHooks) {
    this.#dir = dir;
    this.#file = join(dir, STORE_FILE);
    this.#lockFile = join(dir, LOCK_FILE);
    this.#hooks = hooks;
  }

  /** Locks `dir`, replays its file into the store through `hooks.apply`, and compacts it. */
  static open(dataDir: string, hooks: JournalHooks): StoreJournal {
    const dir = resolve(dataDir);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const journal = new StoreJournal(dir, hooks);
    journal.#lock();
    try {
      journal.#replay();
      journal.compact();
    } catch (error) {
      journal.close();
      throw error;
    }
    return journal;
  }

  /** Writes one change; throws (leaving the file as it was) when the write fails. */
  append(op: JournalOp): void {
    if (this.#closed) {
      throw new IdpError('ERR_IDP_STORE_CLOSED', 503, 'The IdP is shutting down; try again.');
    }
    const line = Buffer.from(`${JSON.stringify(op)}\n`);
    try {
      writeAll(this.#fd, line);
    } catch (error) {
      // Cut a partial line off so later lines stay parseable, then fail the request.
      try {
        ftruncateSync(this.#fd, this.#size);
      } catch {
        // The disk is in trouble; replay still drops a torn last line.
      }
      throw new IdpError('ERR_IDP_STORE_WRITE', 503, `Could not write to ${this.#file}.`, { cause: error });
    }
    this.#size += line.length;
    this.#lines += 1;
  }

  /** Rewrites the file when it holds far more lines than `liveRecords` (called by the sweep). */
  compactIfLarge(liveRecords: number): void {
    if (!this.#closed && this.#lines > 2 * liveRecords + COMPACT_SLACK) this.compact();
  }

  /** Rewrites the file with only the live records (atomically: temp file, fsync, rename). */
  compact(): void {
    const tmp = `${this.#file}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    let lines = 0;
    try {
      let chunk: string[] = [];
      for (const op of this.#hooks.snapshot()) {
        chunk.push(JSON.stringify(op));
        lines += 1;
        if (chunk.length === 1000) {
          writeAll(fd, Buffer.from(`${chunk.join('\n')}\n`));
          chunk = [];
        }
      }
      if (chunk.length > 0) writeAll(fd, Buffer.from(`${chunk.join('\n')}\n`));
      // The rename must not land before the data: a crash then would leave an empty store.
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.#file);
    if (this.#fd !== -1) closeSync(this.#fd);
    this.#fd = openSync(this.#file, 'a', 0o600);
    this.#size = fstatSync(this.#fd).size;
    this.#lines = lines;
  }

  /** Closes the file and releases the folder. Nothing is flushed here: every change already is. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#fd !== -1) closeSync(this.#fd);
    this.#fd = -1;
    try {
      unlinkSync(this.#lockFile);
    } catch {
      // Already gone: nothing to release.
    }
    openDirs.delete(this.#dir);
  }

  #lock(): void {
    if (openDirs.has(this.#dir)) {
      throw new IdpError(
        'ERR_IDP_DATA_DIR_IN_USE',
        500,
        `createIdp: dataDir ${this.#dir} is used by another IdP in this process; close() that one first or pick another folder`,
      );
    }
    for (let attempt = 0; attempt < 2; attempt += 1) {
      try {
        writeFileSync(this.#lockFile, `${process.pid}\n`, { flag: 'wx', mode: 0o600 });
        openDirs.add(this.#dir);
        return;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      const holder = Number.parseInt(readText(this.#lockFile) ?? '', 10);
      if (Number.isSafeInteger(holder) && holder !== process.pid && isAlive(holder)) {
        throw new IdpError(
          'ERR_IDP_DATA_DIR_IN_USE',
          500,
          `createIdp: dataDir ${this.#dir} is used by process ${holder}; stop it, wait for it to exit, or pick another folder`,
        );
      }
      // Left behind by a process that was killed (or by this pid before a restart): take it over.
      this.#hooks.logger.warn(
        { pid: Number.isSafeInteger(holder) ? holder : null },
        'taking over a stale store lock',
      );
      try {
        unlinkSync(this.#lockFile);
      } catch {
        // Someone else removed it; the next attempt decides.
      }
    }
    throw new IdpError(
      'ERR_IDP_DATA_DIR_IN_USE',
      500,
      `createIdp: could not lock dataDir ${this.#dir}; another IdP is starting on it`,
    );
  }

  #replay(): void {
    const text = readText(this.#file);
    if (text === undefined) return;
    const lines = text.split('\n');
    // The part after the last newline is a write the crash cut short: never acknowledged.
    const torn = lines.pop() ?? '';
    if (torn !== '')
      this.#hooks.logger.warn({ bytes: torn.length }, 'dropped a torn last line of the store file');
    let applied = 0;
    for (const [index, line] of lines.entries()) {
      if (line === '') continue;
      let op: unknown;
      try {
        op = JSON.parse(line);
      } catch {
        op = undefined;
      }
      if (!isJournalOp(op)) {
        // Skipping a line could bring back a revoked token, so refuse to start instead.
        throw new IdpError(
          'ERR_IDP_DATA_CORRUPT',
          500,
          `createIdp: ${this.#file} line ${index + 1} is not a store record; move the file away to start with an empty store (every IdP session and token in it is lost then)`,
        );
      }
      this.#hooks.apply(op);
      applied += 1;
    }
    this.#hooks.logger.info({ file: this.#file, changes: applied }, 'store replayed from disk');
  }
}

function writeAll(fd: number, data: Buffer): void {
  let offset = 0;
  while (offset < data.length) offset += writeSync(fd, data, offset, data.length - offset);
}

function readText(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function isJournalOp(value: unknown): value is JournalOp {
  if (typeof value !== 'object' || value === null) return false;
  const op = value as Record<string, unknown>;
  switch (op.op) {
    case 'set':
      return (
        typeof op.k === 'string' &&
        typeof op.p === 'object' &&
        op.p !== null &&
        (op.e === null || typeof op.e === 'number')
      );
    case 'del':
      return typeof op.k === 'string';
    case 'consume':
      return typeof op.k === 'string' && typeof op.t === 'number';
    case 'revoke':
      return typeof op.g === 'string';
    default:
      return false;
  }
}
