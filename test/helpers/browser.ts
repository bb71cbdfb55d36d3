/**
 * Headless Chromium for browser tests: Debian's `chromium` package driven by playwright-core.
 * No browser is downloaded; `.ci/run` installs the package. Screenshots go under
 * test-output/screenshots/ (git-ignored), where a person looks at them.
 */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';

export const CHROMIUM_PATH = process.env.WARDEN_CHROMIUM ?? '/usr/bin/chromium';
export const SCREENSHOT_DIR = resolve(process.cwd(), 'test-output', 'screenshots');

export interface TestBrowser {
  browser: Browser;
  close(): Promise<void>;
}

/**
 * Starts headless Chromium with the flags this sandbox needs (no network, running as root).
 * Playwright gives the browser a fresh temporary profile of its own and removes it on close.
 */
export async function launchBrowser(): Promise<TestBrowser> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  return {
    browser,
    async close() {
      await browser.close().catch(() => undefined);
    },
  };
}

/** Saves a full-page screenshot as test-output/screenshots/<name>.png and returns its path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const path = join(SCREENSHOT_DIR, `${name.replace(/[^a-zA-Z0-9._-]+/g, '-')}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}
