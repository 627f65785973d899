import type { Adapter, AdapterFactory, AdapterPayload } from 'oidc-provider';

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

/**
 * One in-memory store for one IdP instance.
 *
 * Why not oidc-provider's bundled MemoryAdapter: it shares one module-level LRU of 1,000 entries
 * between every provider in the process, so parallel test IdPs would see each other's records and
 * a benchmark could evict live sessions. This store is per instance, unbounded but TTL'd (records
 * expire on read and on a periodic sweep), and exposes the sessions so tests can end them.
 */
export class IdpStore {
  readonly #records = new Map<string, Entry>();
  readonly #grantMembers = new Map<string, Set<string>>();
  readonly #sessionByUid = new Map<string, string>();
  readonly #userCodes = new Map<string, string>();
  readonly #clockTolerance: number;

  constructor(clockTolerance = 0) {
    this.#clockTolerance = clockTolerance;
  }

  /** The adapter factory handed to oidc-provider's `adapter` option. */
  readonly factory: AdapterFactory = (model: string): Adapter => {
    const key = (id: string) => `${model}:${id}`;
    return {
      upsert: async (id, payload, expiresIn) => {
        const k = key(id);
        const expiresAt =
          typeof expiresIn === 'number' ? Date.now() + (expiresIn + this.#clockTolerance) * 1000 : Infinity;
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
        const entry = this.#records.get(key(id));
        if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000);
      },
      destroy: async (id) => {
        const k = key(id);
        const entry = this.#records.get(k);
        this.#records.delete(k);
        if (entry?.payload.uid && model === 'Session') this.#sessionByUid.delete(entry.payload.uid);
        if (entry?.payload.userCode) this.#userCodes.delete(entry.payload.userCode);
      },
      revokeByGrantId: async (grantId) => {
        for (const k of this.#grantMembers.get(grantId) ?? []) this.#records.delete(k);
        this.#grantMembers.delete(grantId);
        this.#records.delete(`Grant:${grantId}`);
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

  /** Drops expired records; called on a timer so a long-running IdP does not grow forever. */
  sweep(): void {
    const now = Date.now();
    for (const [k, entry] of this.#records) if (entry.expiresAt <= now) this.#records.delete(k);
    for (const [grantId, members] of this.#grantMembers) {
      for (const k of members) if (!this.#records.has(k)) members.delete(k);
      if (members.size === 0) this.#grantMembers.delete(grantId);
    }
    for (const [uid, id] of this.#sessionByUid)
      if (!this.#records.has(`Session:${id}`)) this.#sessionByUid.delete(uid);
  }

  /** Number of stored records (tests and diagnostics). */
  get size(): number {
    return this.#records.size;
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
