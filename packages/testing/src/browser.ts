// Filled in by the issue that owns this helper; see index.ts.
export {};
