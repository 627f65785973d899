import type { Adapter, AdapterFactory, AdapterPayload } from 'oidc-provider';
import { type JournalHooks, type JournalOp, StoreJournal } from './journal.js';

interface Entry {
  payload: AdapterPayload;
  /** Epoch milliseconds; `Infinity` when the model has no expiry. */
  expiresAt: number;
}

/** Models whose records belong to a grant, so `revokeByGrantId` can find them. */
const GRANTABLE = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
]);

/** Options of {@link IdpStore}. */
export interface IdpStoreOptions {
  /** Seconds added to every expiry. Default 0. */
  clockTolerance?: number;
  /** Folder for the write-through store file; without it the store lives in memory only. */
  dataDir?: string;
  /** Told about replay and recovery (counts only). */
  logger?: JournalHooks['logger'];
}

const silent: JournalHooks['logger'] = { info() {}, warn() {} };

/**
 * One store for one IdP instance: in memory, and write-through to a file when `dataDir` is given.
 *
 * Why not oidc-provider's bundled MemoryAdapter: it shares one module-level LRU of 1,000 entries
 * between every provider in the process, so parallel test IdPs would see each other's records and
 * a benchmark could evict live sessions. This store is per instance, unbounded but TTL'd (records
 * expire on read and on a periodic sweep), and exposes the sessions so tests can end them.
 *
 * Every change goes through one path (`#commit`): written to the {@link StoreJournal} first, then
 * applied in memory, so a change that could not be persisted is not visible either, and replay at
 * start runs the very same `#apply`.
 */
export class IdpStore {
  readonly #records = new Map<string, Entry>();
  readonly #grantMembers = new Map<string, Set<string>>();
  readonly #sessionByUid = new Map<string, string>();
  readonly #userCodes = new Map<string, string>();
  readonly #clockTolerance: number;
  readonly #journal: StoreJournal | undefined;

  constructor(options: IdpStoreOptions = {}) {
    this.#clockTolerance = options.clockTolerance ?? 0;
    this.#journal = options.dataDir
      ? StoreJournal.open(options.dataDir, {
          apply: (op) => this.#apply(op),
          snapshot: () => this.#snapshot(),
          logger: options.logger ?? silent,
        })
      : undefined;
  }

  /** The adapter factory handed to oidc-provider's `adapter` option. */
  readonly factory: AdapterFactory = (model: string): Adapter => {
    const key = (id: string) => `${model}:${id}`;
    return {
      upsert: async (id, payload, expiresIn) => {
        const e =
          typeof expiresIn === 'number' ? Date.now() + (expiresIn + this.#clockTolerance) * 1000 : null;
        this.#commit({ op: 'set', k: key(id), p: payload, e });
      },
      find: async (id) => this.#get(key(id)),
      findByUid: async (uid) => {
        const id = this.#sessionByUid.get(uid);
        return id === undefined ? undefined : this.#get(key(id));
      },
      findByUserCode: async (userCode) => {
        const id = this.#userCodes.get(userCode);
        return id === undefined ? undefined : this.#get(key(id));
      },
      consume: async (id) => {
        if (this.#records.has(key(id)))
          this.#commit({ op: 'consume', k: key(id), t: Math.floor(Date.now() / 1000) });
      },
      destroy: async (id) => {
        if (this.#records.has(key(id))) this.#commit({ op: 'del', k: key(id) });
      },
      revokeByGrantId: async (grantId) => {
        this.#commit({ op: 'revoke', g: grantId });
      },
    };
  };

  /** Live sessions (id + payload) of one account, for `Idp.endSessions`. */
  sessionsOf(accountId: string): Array<{ id: string; payload: AdapterPayload }> {
    const out: Array<{ id: string; payload: AdapterPayload }> = [];
    for (const [k, entry] of this.#records) {
      if (!k.startsWith('Session:') || entry.payload.accountId !== accountId) continue;
      if (this.#get(k) === undefined) continue;
      out.push({ id: k.slice('Session:'.length), payload: entry.payload });
    }
    return out;
  }

  /**
   * Drops expired records (called on a timer so a long-running IdP does not grow forever) and
   * compacts the store file when it has grown well past the live records.
   */
  sweep(): void {
    const now = Date.now();
    // Expiry needs no journal line: replay drops expired records by their stored expiry.
    for (const [k, entry] of this.#records) if (entry.expiresAt <= now) this.#records.delete(k);
    for (const [grantId, members] of this.#grantMembers) {
      for (const k of members) if (!this.#records.has(k)) members.delete(k);
      if (members.size === 0) this.#grantMembers.delete(grantId);
    }
    for (const [uid, id] of this.#sessionByUid)
      if (!this.#records.has(`Session:${id}`)) this.#sessionByUid.delete(uid);
    for (const [code, id] of this.#userCodes)
      if (!this.#records.has(`DeviceCode:${id}`)) this.#userCodes.delete(code);
    this.#journal?.compactIfLarge(this.#records.size);
  }

  /** Number of stored records (tests and diagnostics). */
  get size(): number {
    return this.#records.size;
  }

  /** Closes the store file (when persistent). Every change is already on disk: nothing to save. */
  close(): void {
    this.#journal?.close();
  }

  #commit(op: JournalOp): void {
    this.#journal?.append(op);
    this.#apply(op);
  }

  #apply(op: JournalOp): void {
    switch (op.op) {
      case 'set':
        this.#set(op.k, op.p, op.e ?? Infinity);
        break;
      case 'consume': {
        const entry = this.#records.get(op.k);
        if (entry) entry.payload.consumed = op.t;
        break;
      }
      case 'del': {
        const entry = this.#records.get(op.k);
        this.#records.delete(op.k);
        if (entry?.payload.uid && op.k.startsWith('Session:')) this.#sessionByUid.delete(entry.payload.uid);
        if (entry?.payload.userCode) this.#userCodes.delete(entry.payload.userCode);
        break;
      }
      case 'revoke':
        for (const k of this.#grantMembers.get(op.g) ?? []) this.#records.delete(k);
        this.#grantMembers.delete(op.g);
        this.#records.delete(`Grant:${op.g}`);
        break;
    }
  }

  #set(k: string, payload: AdapterPayload, expiresAt: number): void {
    // Replay meets records that expired while the IdP was down: they simply are not loaded.
    if (expiresAt <= Date.now()) {
      this.#records.delete(k);
      return;
    }
    const model = k.slice(0, k.indexOf(':'));
    const id = k.slice(model.length + 1);
    this.#records.set(k, { payload, expiresAt });
    if (model === 'Session' && payload.uid) this.#sessionByUid.set(payload.uid, id);
    if (payload.userCode) this.#userCodes.set(payload.userCode, id);
    if (GRANTABLE.has(model) && payload.grantId) {
      let members = this.#grantMembers.get(payload.grantId);
      if (!members) {
        members = new Set();
        this.#grantMembers.set(payload.grantId, members);
      }
      members.add(k);
    }
  }

  *#snapshot(): Iterable<JournalOp> {
    const now = Date.now();
    for (const [k, { payload, expiresAt }] of this.#records) {
      if (expiresAt <= now) continue;
      yield { op: 'set', k, p: payload, e: Number.isFinite(expiresAt) ? expiresAt : null };
    }
  }

  #get(k: string): AdapterPayload | undefined {
    const entry = this.#records.get(k);
    if (!entry) return undefined;
    if (entry.expiresAt <= Date.now()) {
      this.#records.delete(k);
      return undefined;
    }
    return entry.payload;
  }
}
