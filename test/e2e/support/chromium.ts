// Debian's Chromium, driven by playwright-core (which cannot download browsers here). One launch per
// spec file, a fresh context per test. Missing Chromium: an error under CI, a loud skip elsewhere.
import { existsSync } from 'node:fs';
import { inCI } from '@gatehouse/testing';
import { type Browser, type BrowserContext, chromium } from 'playwright-core';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

/**
 * Whether the browser suite `suite` can run. Under `CI=true` a missing Chromium throws (CI must
 * never skip browser tests); elsewhere it warns on stderr with the fix and returns false.
 *
 * Use as: `const ready = requireChromium('sample suite'); describe.skipIf(!ready)(…)`.
 */
export function requireChromium(suite: string): boolean {
  if (existsSync(CHROMIUM_PATH)) return true;
  const reason = `no Chromium at ${CHROMIUM_PATH} (install it with: apt-get install -y chromium, or set CHROMIUM_PATH)`;
  if (inCI) throw new Error(`Browser tests "${suite}" need Chromium under CI but found ${reason}`);
  console.warn(`\n!!! SKIPPING browser tests "${suite}": ${reason}. CI never skips these.\n`);
  return false;
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: ARGS });
}

/** A fresh, isolated context (own cookies and storage) with a desktop or phone-sized viewport. */
export function newContext(
  browser: Browser,
  viewport: 'desktop' | 'phone' = 'desktop',
): Promise<BrowserContext> {
  return browser.newContext({
    viewport: viewport === 'phone' ? { width: 375, height: 812 } : { width: 1280, height: 900 },
    deviceScaleFactor: 1,
    locale: 'en-GB',
    timezoneId: 'UTC',
  });
}
