import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { IdpStore } from '../src/lib/adapter.js';
import { LOCK_FILE, STORE_FILE } from '../src/lib/journal.js';

const dirs: string[] = [];
const stores: IdpStore[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'idp-store-'));
  dirs.push(dir);
  return dir;
}
function open(dataDir: string): IdpStore {
  const store = new IdpStore({ dataDir });
  stores.push(store);
  return store;
}
const lines = (dir: string) =>
  readFileSync(join(dir, STORE_FILE), 'utf8')
    .split('\n')
    .filter((l) => l !== '');

afterEach(() => {
  for (const store of stores.splice(0)) store.close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('IdpStore with a dataDir (write-through file)', () => {
  it('a new store on the same folder sees every record, consume, destroy and grant revocation of the old one', async () => {
    const dir = tempDir();
    const first = open(dir);
    const rt = first.factory('RefreshToken');
    const grants = first.factory('Grant');
    const sessions = first.factory('Session');
    await grants.upsert('g1', { accountId: 'alice' }, 600);
    await rt.upsert('kept', { grantId: 'g2', accountId: 'alice' }, 600);
    await rt.upsert('used', { grantId: 'g2' }, 600);
    await rt.consume('used');
    await rt.upsert('revoked', { grantId: 'g1' }, 600);
    await sessions.upsert('s1', { uid: 'u1', accountId: 'alice' }, 600);
    await sessions.upsert('s2', { uid: 'u2', accountId: 'bob' }, 600);
    await sessions.destroy('s2');
    await rt.revokeByGrantId('g1');
    // close() writes nothing (every change is already in the file); it only releases the folder,
    // which a killed process's successor does by itself (see the lock tests).
    first.close();

    const second = open(dir);
    const rt2 = second.factory('RefreshToken');
    expect(await rt2.find('kept')).toEqual({ grantId: 'g2', accountId: 'alice' });
    expect((await rt2.find('used'))?.consumed).toEqual(expect.any(Number));
    expect(await rt2.find('revoked')).toBeUndefined();
    expect(await second.factory('Grant').find('g1')).toBeUndefined();
    expect(await second.factory('Session').findByUid?.('u1')).toMatchObject({ accountId: 'alice' });
    expect(await second.factory('Session').find('s2')).toBeUndefined();
    expect(second.sessionsOf('alice').map((s) => s.id)).toEqual(['s1']);
    expect(second.size).toBe(3);
    // Grant membership is rebuilt too: revoking g2 after the restart removes its tokens.
    await rt2.revokeByGrantId('g2');
    expect(await rt2.find('kept')).toBeUndefined();
  });

  it('honours expiry: records that expired while the IdP was down are not loaded, and compaction drops them', async () => {
    const dir = tempDir();
    const first = open(dir);
    await first.factory('AccessToken').upsert('short', { grantId: 'g' }, 1);
    await first.factory('AccessToken').upsert('long', { grantId: 'g' }, 600);
    await first.factory('Client').upsert('forever', { client_id: 'x' });
    first.close();
    await new Promise((r) => setTimeout(r, 1_100));
    const second = open(dir);
    expect(await second.factory('AccessToken').find('short')).toBeUndefined();
    expect(await second.factory('AccessToken').find('long')).toBeDefined();
    expect(await second.factory('Client').find('forever')).toEqual({ client_id: 'x' });
    // Opening compacts: the file holds exactly the live records.
    expect(
      lines(dir)
        .map((l) => (JSON.parse(l) as { k: string }).k)
        .sort(),
    ).toEqual(['AccessToken:long', 'Client:forever']);
  });

  it('compacts the file on the sweep once it holds far more lines than live records', async () => {
    const dir = tempDir();
    const store = open(dir);
    const codes = store.factory('AuthorizationCode');
    for (let i = 0; i < 1_100; i += 1) await codes.upsert('same', { n: i }, 600);
    expect(lines(dir)).toHaveLength(1_100);
    store.sweep();
    expect(lines(dir)).toHaveLength(1);
    await codes.upsert('next', { n: 0 }, 600); // still appending after the rewrite
    store.close();
    const again = open(dir);
    expect(await again.factory('AuthorizationCode').find('same')).toEqual({ n: 1_099 });
    expect(await again.factory('AuthorizationCode').find('next')).toEqual({ n: 0 });
  });

  it('drops a torn last line (a write cut short by a crash, never acknowledged) and keeps the rest', async () => {
    const dir = tempDir();
    const first = open(dir);
    await first.factory('Grant').upsert('g1', { accountId: 'alice' }, 600);
    first.close();
    appendFileSync(join(dir, STORE_FILE), '{"op":"set","k":"Grant:g2","p":{"acc');
    const second = open(dir);
    expect(await second.factory('Grant').find('g1')).toEqual({ accountId: 'alice' });
    expect(await second.factory('Grant').find('g2')).toBeUndefined();
    expect(lines(dir)).toHaveLength(1);
  });

  it('refuses to start on a corrupt line in the middle (skipping it could revive a revoked token)', () => {
    const dir = tempDir();
    writeFileSync(
      join(dir, STORE_FILE),
      '{"op":"set","k":"Grant:g1","p":{},"e":null}\nnot json\n{"op":"del","k":"Grant:g1"}\n',
    );
    expect(() => open(dir)).toThrow(
      expect.objectContaining({
        code: 'ERR_IDP_DATA_CORRUPT',
        message: expect.stringMatching(/line 2 .*move the file away/),
      }),
    );
    // The failed start released the folder: the file fixed, the store opens.
    writeFileSync(join(dir, STORE_FILE), '{"op":"set","k":"Grant:g1","p":{},"e":null}\n');
    expect(open(dir).size).toBe(1);
  });

  it('one store per folder: a second one in this process, or a live process holding the lock, is refused', () => {
    const dir = tempDir();
    const first = open(dir);
    expect(() => open(dir)).toThrow(expect.objectContaining({ code: 'ERR_IDP_DATA_DIR_IN_USE' }));
    first.close();
    // A lock held by a live process (our parent, which is certainly running).
    writeFileSync(join(dir, LOCK_FILE), `${process.ppid}\n`);
    expect(() => open(dir)).toThrow(
      expect.objectContaining({
        code: 'ERR_IDP_DATA_DIR_IN_USE',
        message: expect.stringContaining(String(process.ppid)),
      }),
    );
  });

  it('takes over the lock of a process that was killed (its pid is gone)', async () => {
    const dir = tempDir();
    // pid_max on Linux is at most 2^22: this pid cannot be running.
    writeFileSync(join(dir, LOCK_FILE), '4194305\n');
    const store = open(dir);
    await store.factory('Grant').upsert('g1', {}, 600);
    expect(readFileSync(join(dir, LOCK_FILE), 'utf8').trim()).toBe(String(process.pid));
    store.close();
    expect(() => readFileSync(join(dir, LOCK_FILE))).toThrow(/ENOENT/);
  });
});
