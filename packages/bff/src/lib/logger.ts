// The logger the BFF writes to: a minimal structured interface (pino, bunyan and console adapters fit
// it). At the bottom of the import graph: everything may log, the logger imports nothing.

/** Minimal structured logger; the default is silent. Never pass tokens, secrets or session ids. */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** The default logger: drops everything. */
export const silentLogger: Logger = Object.freeze({ debug() {}, info() {}, warn() {}, error() {} });
