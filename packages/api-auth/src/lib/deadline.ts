/**
 * Settles like `promise`, or rejects with `onTimeout()` after `ms`. The work behind `promise` goes on
 * (a shared JWKS fetch may still fill the cache for later requests); only this caller stops waiting.
 */
export function withDeadline<T>(promise: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(onTimeout()), Math.max(0, ms));
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (cause: unknown) => {
        clearTimeout(timer);
        reject(cause);
      },
    );
  });
}
