/** Reads a positive integer (seconds, ports) from env, with an error that names the variable. */
export function envInt(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new TypeError(`${name} must be a positive whole number, got ${JSON.stringify(raw)}`);
  }
  return value;
}

export function envBool(env: NodeJS.ProcessEnv, name: string): boolean | undefined {
  const raw = env[name]?.toLowerCase();
  if (raw === undefined || raw === '') return undefined;
  if (['1', 'true', 'yes', 'on'].includes(raw)) return true;
  if (['0', 'false', 'no', 'off'].includes(raw)) return false;
  throw new TypeError(`${name} must be true or false, got ${JSON.stringify(env[name])}`);
}

export function envJson<T>(env: NodeJS.ProcessEnv, name: string): T | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  try {
    return JSON.parse(raw) as T;
  } catch {
    throw new TypeError(`${name} must be JSON (a JWKS such as {"keys":[…]})`);
  }
}
