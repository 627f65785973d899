// Loading @gatehouse/bff must not change the host's global fetch: the undici package it forwards with
// would otherwise install its own Agent as fetch's process-wide dispatcher (see proxy/global-fetch-guard.ts).
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const script = fileURLToPath(new URL('./support-fetch/fetch-after-import.ts', import.meta.url));

describe('the host process after importing @gatehouse/bff', () => {
  it("keeps Node's own fetch dispatcher: a POST with an explicit content-length still works", async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--conditions=@gatehouse/source', '--import', 'tsx', script],
      { timeout: 60_000 },
    );
    const result = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as {
      dispatcherAfterImport: string;
      outcome: unknown;
    };
    expect(result).toEqual({ dispatcherAfterImport: 'node', outcome: { received: 29 } });
  });
});
