// What a user does in the sample SPA, step by step, with the waits that make each step reliable.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Page } from 'playwright-core';

// Browser globals used inside page.evaluate(): that code runs in Chromium, not in Node.
declare const document: { fonts: { ready: Promise<unknown> } };

export const SCREENSHOT_DIR = join(process.cwd(), 'test-results', 'screenshots');

/** Opens the SPA and waits until it has decided whether a session exists. */
export async function openApp(page: Page, baseUrl: string): Promise<'signed-in' | 'signed-out'> {
  await page.goto(`${baseUrl}/`);
  const which = await Promise.race([
    page
      .getByTestId('signed-in')
      .waitFor()
      .then(() => 'signed-in' as const),
    page
      .getByTestId('signed-out')
      .waitFor()
      .then(() => 'signed-out' as const),
  ]);
  return which;
}

/**
 * Signs in through the IdP's own page: click "Sign in" in the SPA, fill the IdP's form, and wait for
 * the SPA to show the signed-in view again.
 */
export async function signIn(page: Page, baseUrl: string, idpUrl: string, user: string): Promise<void> {
  if ((await openApp(page, baseUrl)) === 'signed-in') throw new Error('expected to start signed out');
  await page.getByTestId('sign-in').click();
  await page.waitForURL((url) => url.origin === idpUrl);
  await page.getByLabel('Username').fill(user);
  await page.getByLabel('Password').fill(user);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL((url) => url.origin === baseUrl);
  await page.getByTestId('signed-in').waitFor();
}

/** Adds a todo through the form and waits until the list shows it. */
export async function addTodo(page: Page, title: string): Promise<void> {
  await page.getByLabel('New todo').fill(title);
  await page.getByTestId('add-todo').click();
  await page.getByTestId('todo-item').filter({ hasText: title }).waitFor();
}

/** The titles currently in the list (after it finished loading). */
export async function todoTitles(page: Page): Promise<string[]> {
  await page.locator('[data-testid="todo-list"], [data-testid="todos-empty"]').first().waitFor();
  return page.getByTestId('todo-title').allTextContents();
}

/** Writes a full-page screenshot to test-results/screenshots/<name>.png. */
export async function screenshot(page: Page, name: string): Promise<string> {
  await mkdir(SCREENSHOT_DIR, { recursive: true });
  const path = join(SCREENSHOT_DIR, `${name}.png`);
  // Let fonts and the last render settle so the picture shows what a user would see.
  await page.evaluate(() => document.fonts.ready);
  await page.screenshot({ path, fullPage: true, animations: 'disabled' });
  return path;
}

/** The statuses of the call-log entries, newest first, optionally only for one method + path. */
export async function loggedCalls(
  page: Page,
): Promise<Array<{ method: string; path: string; status: string }>> {
  return page.getByTestId('call-log-entry').evaluateAll((items) =>
    items.map((item) => ({
      method: item.getAttribute('data-method') ?? '',
      path: item.getAttribute('data-path') ?? '',
      status: item.getAttribute('data-status') ?? '',
    })),
  );
}
