// Launches Debian's chromium through playwright-core the way every tsi browser test and
// the dashboard benchmark do: headless, no sandbox (root), no background traffic, and a
// fresh user-data-dir per launch (removed on close).
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const CHROMIUM = process.env.TSI_CHROMIUM ?? '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Returns { context, close }: a persistent context on a new, empty profile directory. */
export async function launch(viewport = { width: 1440, height: 1000 }) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'tsi-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport,
    timezoneId: 'UTC',
    locale: 'en-GB',
  });
  const close = async () => {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  };
  return { context, close };
}
