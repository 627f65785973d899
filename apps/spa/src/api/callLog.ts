import type { CallRecord } from './types';

// A tiny store for the "what just happened" panel. React subscribes with useSyncExternalStore.

const MAX_RECORDS = 50;
let records: readonly CallRecord[] = [];
let nextId = 1;
const listeners = new Set<() => void>();

function emit(): void {
  for (const listener of listeners) listener();
}

export const callLog = {
  subscribe(listener: () => void): () => void {
    listeners.add(listener);
    return () => listeners.delete(listener);
  },
  /** Newest first. The array is replaced (never mutated) so React sees the change. */
  getSnapshot(): readonly CallRecord[] {
    return records;
  },
  add(record: Omit<CallRecord, 'id'>): void {
    records = [{ ...record, id: nextId++ }, ...records].slice(0, MAX_RECORDS);
    emit();
  },
  clear(): void {
    records = [];
    emit();
  },
};
