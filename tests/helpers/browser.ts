/**
 * Headless Chromium for the dashboard tests: Debian's `chromium` (or CHROMIUM_PATH; never a downloaded browser)
 * driven by puppeteer-core, and screenshots saved as test artifacts under test-artifacts/dashboard/ (or
 * SCREENSHOT_DIR). `CHROMIUM` is undefined when no browser is installed, and the browser tests say they skip.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
export const SCREENSHOT_DIR = process.env.SCREENSHOT_DIR ?? resolve(__dirname, '../../test-artifacts/dashboard');

export async function launchBrowser(): Promise<Browser> {
  return puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-extensions', '--disable-dev-shm-usage'],
  });
}

/**
 * A page that records console errors (CSP violations among them) and uncaught exceptions, to assert there were none.
 * The browser's own "Failed to load resource" line for an HTTP error answer is left out: the page shows those.
 */
export async function openPage(browser: Browser, width = 1280, height = 900): Promise<{ page: Page; problems: string[] }> {
  const page = await browser.newPage();
  await page.setViewport({ width, height });
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${(e as Error).message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(`console: ${m.text()}`);
  });
  return { page, problems };
}

/** The whole page, or one element of it (`selector`), as test-artifacts/dashboard/<name>.png. */
export async function screenshot(page: Page, name: string, selector?: string): Promise<string> {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const path = join(SCREENSHOT_DIR, `${name}.png`) as `${string}.png`;
  const element = selector ? await page.$(selector) : null;
  if (selector && !element) throw new Error(`no element ${selector} to screenshot`);
  await (element ?? page).screenshot({ path, ...(element ? {} : { fullPage: true }) });
  return path;
}
