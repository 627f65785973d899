// Keeps the host's global fetch as it is. Loading the `undici` package installs its own Agent as the
// process-wide dispatcher of fetch() when none is set yet (its lib/global.js). Node's built-in fetch
// then sends every request of the host through another undici version's Agent, and some requests fail
// (Node 20: a POST with an explicit content-length → "invalid content-length header"). Node's fetch
// installs its own dispatcher the first time it runs, so this module — imported for its side effect
// before `undici` (see upstreams.ts; listed under "sideEffects" in package.json) — runs it once on a
// data: URL, which touches no network. A dispatcher already set (by Node or by the host) is left alone.
const GLOBAL_DISPATCHER = Symbol.for('undici.globalDispatcher.1');

if ((globalThis as unknown as Record<symbol, unknown>)[GLOBAL_DISPATCHER] === undefined) {
  fetch('data:,').catch(() => {});
}
