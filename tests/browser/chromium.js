// Debian's Chromium, headless, as every browser test launches it: quiet
// (no background networking, updates or sync) so that what the tests see
// is the page's own traffic. `CHROMIUM` overrides the binary.

import { chromium } from "playwright-core";

export const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";

/** A headless Chromium, closed by the caller. */
export function launchChromium() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
}
