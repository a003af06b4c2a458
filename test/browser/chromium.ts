import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import type { Browser, Page } from "playwright-core";
import { chromium } from "playwright-core";

/**
 * Debian's Chromium, driven by playwright-core (Playwright's own browser download cannot reach
 * this machine's registries). .ci/run installs it; EDGEHOME_CHROMIUM names another binary.
 */
export const CHROMIUM = process.env.EDGEHOME_CHROMIUM || "/usr/bin/chromium";

const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"];

export async function launchChromium(): Promise<Browser> {
	if (!existsSync(CHROMIUM))
		throw new Error(`the console tests drive Chromium at ${CHROMIUM}: apt-get install chromium (as .ci/run does), or set EDGEHOME_CHROMIUM`);
	return chromium.launch({ executablePath: CHROMIUM, args: ARGS });
}

/** Everything a page reports as an error: console errors (a CSP violation, a failed request among them) and uncaught exceptions. */
export function pageErrors(page: Page): string[] {
	const errors: string[] = [];
	page.on("console", message => {
		if (message.type() === "error") errors.push(`${message.text()} (${message.location().url})`);
	});
	page.on("pageerror", error => errors.push(`uncaught: ${error.message}`));
	return errors;
}

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** The console built from its sources now, into `outDir` (what `npm run build:console` does into console/dist). */
export async function buildConsole(outDir: string): Promise<void> {
	await promisify(execFile)(
		process.execPath,
		["node_modules/vite/bin/vite.js", "build", "console", "--outDir", outDir, "--emptyOutDir", "--logLevel", "warn"],
		{
			cwd: ROOT
		}
	);
}
