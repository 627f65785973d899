// The `backchannel` option of createBff and the endpoint's path: a leaf module, so the configuration
// (config.ts) and the entry matcher (routing.ts) can read them without importing the endpoint itself.

/** Options of the back-channel logout endpoint (`backchannel` in the BFF options). */
export interface BackchannelOptions {
  /**
   * Require `typ: logout+jwt` (B3 strict mode, OWASP ASVS 5.0 V10.5.5). Default false: the OpenID
   * conformance suite signs logout tokens without `typ`, so strict mode fails certification.
   */
  requireLogoutTyp?: boolean;
  /**
   * Longest accepted logout-token lifetime (`exp - iat`) and age (`now - iat`), in seconds. Default 600.
   * Keeps the replay cache short; oidc-provider issues 120 s tokens.
   */
  maxTokenLifetime?: number;
  /** Clock skew tolerated on `iat`/`exp`, in seconds. Default 30. */
  clockTolerance?: number;
}

/** The validated, frozen back-channel options. */
export interface ResolvedBackchannelOptions extends Readonly<Required<BackchannelOptions>> {}

/** The endpoint's path (Duende's, relative to the BFF's base path `/bff`). */
export const BACKCHANNEL_PATH = '/bff/backchannel';

/** Validates the `backchannel` option once at start-up; throws TypeError with the fix. */
export function resolveBackchannelOptions(input: BackchannelOptions | undefined): ResolvedBackchannelOptions {
  const options = input ?? {};
  if (typeof options !== 'object' || options === null) {
    throw new TypeError('backchannel must be an object like { requireLogoutTyp: false }');
  }
  for (const key of Object.keys(options)) {
    if (key !== 'requireLogoutTyp' && key !== 'maxTokenLifetime' && key !== 'clockTolerance') {
      throw new TypeError(
        `backchannel.${key} is not an option; use requireLogoutTyp, maxTokenLifetime or clockTolerance`,
      );
    }
  }
  const requireLogoutTyp = options.requireLogoutTyp ?? false;
  if (typeof requireLogoutTyp !== 'boolean')
    throw new TypeError('backchannel.requireLogoutTyp must be true or false');
  const maxTokenLifetime = options.maxTokenLifetime ?? 600;
  if (!isSeconds(maxTokenLifetime, 1, 86_400)) {
    throw new TypeError(
      'backchannel.maxTokenLifetime is in seconds and must be between 1 and 86400, e.g. 600',
    );
  }
  const clockTolerance = options.clockTolerance ?? 30;
  if (!isSeconds(clockTolerance, 0, 300)) {
    throw new TypeError('backchannel.clockTolerance is in seconds and must be between 0 and 300, e.g. 30');
  }
  return Object.freeze({ requireLogoutTyp, maxTokenLifetime, clockTolerance });
}

function isSeconds(value: unknown, min: number, max: number): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= min && value <= max;
}
