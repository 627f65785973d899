/** One claim as `/bff/user` returns it (Duende BFF format). */
export interface Claim {
  type: string;
  value: unknown;
}

/** A todo item as the sample API stores it (per user). */
export interface Todo {
  id: string;
  title: string;
  done: boolean;
  createdAt?: string;
  updatedAt?: string;
}

/** One line of the "what just happened" panel. */
export interface CallRecord {
  id: number;
  method: string;
  path: string;
  /** HTTP status, or `null` when the request never got an answer (network error). */
  status: number | null;
  durationMs: number;
  /** Wall-clock time the call started. */
  startedAt: Date;
  /** Short human note, e.g. "signed out" or "upstream unavailable". */
  note?: string;
  /** `iframe`: a navigation in a hidden frame (silent login), not a fetch; it has no status to show. */
  via?: 'fetch' | 'iframe';
}
