import { timingSafeEqual } from 'node:crypto';

/**
 * Compares two strings in constant time (for equal lengths; a length difference is not hidden),
 * for secrets such as CSRF or logout state values, where `===` would leak a matching prefix.
 */
export function safeEqual(a: string, b: string): boolean {
  const ab = Buffer.from(a, 'utf8');
  const bb = Buffer.from(b, 'utf8');
  return ab.length === bb.length && timingSafeEqual(ab, bb);
}
