import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CONSOLE_CSP } from "../../mixins/gateway/console.ts";
import type { EmbeddedRegions } from "../harness/embedded-regions.ts";
import { everyFeedHeard, everyRegionLinked, startEmbeddedRegions } from "../harness/embedded-regions.ts";
import { gatewaySchemas, gatewayUrl, http } from "../harness/gateways.ts";
import { deadNoticeLetter } from "../harness/notice-dead-letter.ts";
import { buildConsole, launchChromium, pageErrors } from "./chromium.ts";

/*
 * The admin console in Chromium, against three embedded regions through cn-east's api-cms: an
 * admin walks every page and uses every control; support sees what support may read and none of
 * the controls it may not use (which the API refuses anyway). Screenshots go to
 * test-artifacts/console/; no page may log an error (a CSP violation or a failed request included).
 */

const ARTIFACTS = fileURLToPath(new URL("../../test-artifacts/console/", import.meta.url));
const STAFF_PASSWORD = "runs the console 2026";
const CUSTOMER_PASSWORD = "my own account 2026";
const REGIONS = ["ap-south", "cn-east", "eu-central"];

let cluster: EmbeddedRegions | undefined;
let browser: Browser | undefined;
let built: string | undefined;
let base: string;
const cms = (method: string, path: string, opts?: Parameters<typeof http>[3]) => http(base, method, path, opts);
type Staff = "admin" | "support";
let customer: { id: string; username: string };
let deadLetter: string;

async function register(gateway: "api-cms" | "api-app" | "api-www", username: string, password: string, country?: string) {
	const res = await http(gatewayUrl(cluster!.nodes["cn-east"]!.broker, gateway), "POST", "/api/v1/auth/register", {
		body: { username, password, ...(country ? { country } : {}) }
	});
	expect(res.status, res.text).toBe(201);
	return res.body as { id: string; username: string; region: string };
}

/**
 * A staff member's api-cms token for calls of the test's own. A user has one session per client
 * type, so this ends the console's session of the same member: taken before or after a page, never during.
 */
const staffToken = (role: Staff) => logInAt("api-cms", `console-${role}`, STAFF_PASSWORD);

async function logInAt(gateway: "api-cms" | "api-app" | "api-www", login: string, password: string): Promise<string> {
	const res = await http(gatewayUrl(cluster!.nodes["cn-east"]!.broker, gateway), "POST", "/api/v1/auth/login", { body: { login, password } });
	expect(res.status, res.text).toBe(200);
	return res.body.accessToken;
}

beforeAll(async () => {
	built = await mkdtemp(join(tmpdir(), "edgehome-console-"));
	process.env.EDGEHOME_CONSOLE_DIR = built;
	const [started] = await Promise.all([
		startEmbeddedRegions({
			namespacePrefix: "console-",
			services: ["sv-region", "sv-user", "auth-jwt", "auth-rbac", "sv-money", "sv-notice", "sv-oss", "sv-log"],
			schemas: gatewaySchemas()
		}),
		buildConsole(built),
		mkdir(ARTIFACTS, { recursive: true })
	]);
	cluster = started;
	base = gatewayUrl(cluster.nodes["cn-east"]!.broker, "api-cms");
	await Promise.all([everyFeedHeard(cluster, 10_000), everyRegionLinked(cluster, 10_000)]);
	for (const role of ["admin", "support"] as const) {
		const user = await register("api-cms", `console-${role}`, STAFF_PASSWORD);
		await cluster.nodes["cn-east"]!.broker.call("auth-rbac.grant", { userId: user.id, role });
	}
	// A customer homed in ap-south (Singapore) with two devices signed in, money and a file; a notice to them given up on in cn-east.
	customer = await register("api-app", "mei-console", CUSTOMER_PASSWORD, "SG");
	const appToken = await logInAt("api-app", customer.username, CUSTOMER_PASSWORD);
	await logInAt("api-www", customer.username, CUSTOMER_PASSWORD);
	const credit = await cms("POST", `/api/v1/admin/users/${customer.id}/wallet/adjustments`, {
		token: await staffToken("admin"),
		body: { amount: "5000", currency: "SGD", reason: "welcome credit" }
	});
	expect(credit.status, credit.text).toBe(201);
	const upload = await http(gatewayUrl(cluster.nodes["cn-east"]!.broker, "api-app"), "POST", "/api/v1/files", {
		token: appToken,
		headers: { "x-file-name": "receipt.txt", "content-type": "text/plain" },
		raw: "paid in full\n"
	});
	expect(upload.status, upload.text).toBe(201);
	deadLetter = await deadNoticeLetter(cluster.nodes["cn-east"]!.broker, { userId: customer.id, title: "Your statement" });
	browser = await launchChromium();
}, 90_000);

afterAll(async () => {
	await browser?.close();
	await cluster?.stop();
	if (built) await rm(built, { recursive: true, force: true });
	delete process.env.EDGEHOME_CONSOLE_DIR;
});

/** A fresh browser context (its own sessionStorage) on the console's page. */
async function openConsole(): Promise<{ page: Page; errors: string[] }> {
	const context = await browser!.newContext({ viewport: { width: 1280, height: 860 } });
	const page = await context.newPage();
	page.setDefaultTimeout(15_000);
	const errors = pageErrors(page);
	await page.goto(`${base}/console`);
	return { page, errors };
}

async function logIn(page: Page, login: string): Promise<void> {
	await page.getByLabel("Username, e-mail or phone").fill(login);
	await page.getByLabel("Password").fill(STAFF_PASSWORD);
	await page.getByRole("button", { name: "Log in" }).click();
	await page.locator("nav.sidebar").waitFor();
}

const shoot = (page: Page, name: string) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
const rows = (page: Page, table: string) => page.locator(`[data-table="${table}"] tbody tr`);

/** Waits until `check` holds for the page (Playwright's own waits cover one element; these are counts and texts). */
async function until(check: () => Promise<boolean>, what: string): Promise<void> {
	const started = Date.now();
	while (!(await check())) {
		if (Date.now() - started > 15_000) throw new Error(`not within 15 s: ${what}`);
		await new Promise(r => setTimeout(r, 50));
	}
}

describe("the console's page, as the gateway serves it", () => {
	it("answers /console with a strict CSP and only same-origin scripts, and its files by name only", async () => {
		const page = await cms("GET", "/console");
		expect(page.status).toBe(200);
		expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8");
		expect(page.headers.get("content-security-policy")).toBe(CONSOLE_CSP);
		expect(CONSOLE_CSP).toContain("default-src 'self'");
		expect(CONSOLE_CSP).not.toContain("unsafe");
		expect(page.text).not.toMatch(/<script(?![^>]*\bsrc="\/console\/)/);
		expect(page.text).not.toMatch(/https?:\/\//);
		const script = /src="\/console\/([^"]+\.js)"/.exec(page.text)![1]!;
		const js = await cms("GET", `/console/${script}`);
		expect([js.status, js.headers.get("content-type"), js.headers.get("cache-control")]).toEqual([
			200,
			"text/javascript; charset=utf-8",
			"public, max-age=31536000, immutable"
		]);
		for (const path of ["/console/index.html", "/console/..%2Fpackage.json", "/console/nothing-here.js", "/console/"])
			expect((await cms("GET", path)).status, path).toBe(404);
	});
});

/** A walk through pages: Chromium and three regions share two cores with the rest of the suite. */
const WALK_MS = 60_000;

describe("the console in Chromium", () => {
	it(
		"lets an admin log in, find a user in any region and use every control on the user's page",
		async () => {
			const { page, errors } = await openConsole();
			await page.getByRole("heading", { name: "edgehome console" }).waitFor();
			await shoot(page, "login");
			await logIn(page, "console-admin");
			expect(await page.locator("nav.sidebar a").allTextContents()).toEqual(["Users", "Regions", "Dead letters", "Audit log"]);

			// Every region searched at once: the counts line names all three.
			await page.locator("[data-counts]").filter({ hasText: "eu-central" }).waitFor();
			const counts = await page.locator("[data-counts]").textContent();
			for (const region of REGIONS) expect(counts).toMatch(new RegExp(`${region}: \\d+`));
			await page.getByLabel("Search every region").fill("mei");
			await page.getByRole("button", { name: "Search" }).click();
			await until(async () => (await rows(page, "users").count()) === 1, "one user found");
			expect(await rows(page, "users").first().locator("td").nth(1).textContent()).toBe("ap-south");
			await shoot(page, "admin-users");
			await page.getByRole("link", { name: "mei-console" }).click();

			await page.locator('[data-field="region"]').filter({ hasText: "ap-south" }).waitFor();
			// Sessions: the app's and the website's; end the website's.
			await until(async () => (await rows(page, "sessions").count()) === 2, "two sessions");
			await rows(page, "sessions").filter({ hasText: "www" }).getByRole("button", { name: "End" }).click();
			await until(async () => (await rows(page, "sessions").count()) === 1, "one session left");
			expect(await rows(page, "sessions").first().locator("td").first().textContent()).toBe("app");

			// Roles: grant support, then revoke it.
			const roles = page.locator("#roles");
			await roles.getByLabel("Role").selectOption("support");
			await roles.getByRole("button", { name: "Grant" }).click();
			await roles.locator("[data-roles] .badge", { hasText: "support" }).waitFor();
			await roles.locator("li", { hasText: "support" }).getByRole("button", { name: "Revoke" }).click();
			await roles.locator("[data-roles] .badge", { hasText: "support" }).waitFor({ state: "detached" });

			// Wallet: the welcome credit, an adjustment on top, a freeze and its undoing.
			const wallet = page.locator("#wallet");
			await rows(page, "balances").filter({ hasText: "50.00 SGD" }).waitFor();
			await wallet.getByLabel("Amount (minor units; negative debits)").fill("250");
			await wallet.getByLabel("Currency").fill("SGD");
			await wallet.getByLabel("Reason").fill("goodwill");
			await wallet.getByRole("button", { name: "Adjust" }).click();
			await rows(page, "balances").filter({ hasText: "52.50 SGD" }).waitFor();
			await until(async () => (await rows(page, "entries").count()) === 2, "two entries");
			await wallet.getByLabel("Why").fill("card reported stolen");
			await wallet.getByRole("button", { name: "Freeze" }).click();
			await wallet.locator(".badge", { hasText: "frozen" }).waitFor();
			await wallet.getByRole("button", { name: "Unfreeze" }).click();
			await wallet.locator(".badge", { hasText: "active" }).waitFor();

			// Files and the audit records about the user: what was just done is there.
			await rows(page, "files").filter({ hasText: "receipt.txt" }).waitFor();
			await page.reload();
			await rows(page, "audit").filter({ hasText: "cms.freeze-wallet" }).first().waitFor();
			await shoot(page, "admin-user");

			// Move to eu-central, following the move until it ends; the page then shows the new home.
			await page.locator("#move").getByLabel("To").selectOption("eu-central");
			await page.locator("#move").getByRole("button", { name: "Move" }).click();
			await page.locator('[data-move-state="moved"]').waitFor();
			await page.locator('[data-field="region"]').filter({ hasText: "eu-central" }).waitFor();
			await shoot(page, "admin-move");

			expect(errors).toEqual([]);
		},
		WALK_MS
	);

	it(
		"shows an admin the regions with their nodes and users, the dead letters to replay, and the audit log",
		async () => {
			const { page, errors } = await openConsole();
			await logIn(page, "console-admin");

			await page.locator('[data-nav="regions"]').click();
			await until(async () => (await rows(page, "regions").count()) === 3, "three regions");
			for (const region of REGIONS) {
				await rows(page, "regions").filter({ hasText: region }).locator(".badge", { hasText: "up" }).waitFor();
				await page.locator(`#nodes-${region} [data-table="nodes"] tbody tr`).first().waitFor();
			}
			await until(
				async () => (await page.locator('[data-table="regions"] tr[data-key="eu-central"] [data-field="users"]').textContent()) === "1",
				"the moved user counted in eu-central"
			);
			await shoot(page, "admin-regions");

			await page.locator('[data-nav="dead-letters"]').click();
			const letter = rows(page, "dead-letters").filter({ hasText: "Your statement" });
			await letter.waitFor();
			await shoot(page, "admin-dead-letters");
			await letter.getByRole("button", { name: "Replay" }).click();
			await letter.waitFor({ state: "detached" });

			await page.locator('[data-nav="audit"]').click();
			await rows(page, "audit").first().waitFor();
			await page.getByLabel("Action").fill("cms.move-user");
			await page.getByRole("button", { name: "Filter" }).click();
			await until(async () => (await rows(page, "audit").count()) === 1, "the move's record alone");
			expect(await rows(page, "audit").first().textContent()).toContain(customer.id);
			await shoot(page, "admin-audit");

			expect(errors).toEqual([]);
			const letters = await cms("GET", "/api/v1/admin/notices/dead-letters", { token: await staffToken("admin") });
			expect(letters.body.items.map((d: { id: string }) => d.id)).not.toContain(deadLetter);
		},
		WALK_MS
	);

	it(
		"shows support what support reads, without one control it may not use, and the API refuses those anyway",
		async () => {
			const { page, errors } = await openConsole();
			await logIn(page, "console-support");
			expect(await page.locator("nav.sidebar a").allTextContents()).toEqual(["Users", "Regions", "Audit log"]);

			await page.goto(`${base}/console#/users/${customer.id}`);
			await page.locator('[data-field="region"]').waitFor();
			await rows(page, "sessions").first().waitFor();
			await rows(page, "balances").first().waitFor();
			await rows(page, "files").first().waitFor();
			await rows(page, "audit").first().waitFor();
			expect(await page.locator("[data-action], #move, [data-form]").count()).toBe(0);
			expect(await page.getByRole("button").allTextContents()).toEqual(["Log out"]);
			await shoot(page, "support-user");

			await page.locator('[data-nav="regions"]').click();
			await until(async () => (await rows(page, "regions").count()) === 3, "three regions");
			await page.goto(`${base}/console#/dead-letters`);
			await page.getByRole("alert").waitFor();
			expect(await page.getByRole("alert").textContent()).toContain("FORBIDDEN");
			// The one error: the refusal of a page opened by its URL, which the navigation does not offer support.
			expect(errors.map(e => e.replace(/\(http[^)]*\)/, "(…)"))).toEqual([
				"Failed to load resource: the server responded with a status of 403 (Forbidden) (…)"
			]);

			const token = await staffToken("support");
			const sessions = (await cms("GET", `/api/v1/admin/users/${customer.id}/sessions`, { token })).body;
			const sid = sessions[0].sid;
			const refused = [
				await cms("DELETE", `/api/v1/admin/users/${customer.id}/sessions/${sid}`, { token }),
				await cms("PUT", `/api/v1/admin/users/${customer.id}/roles/support`, { token }),
				await cms("POST", `/api/v1/admin/users/${customer.id}/wallet/adjustments`, { token, body: { amount: "1", currency: "SGD", reason: "x" } }),
				await cms("POST", `/api/v1/admin/users/${customer.id}/wallet/freeze`, { token, body: {} }),
				await cms("POST", `/api/v1/admin/users/${customer.id}/move`, { token, body: { region: "cn-east" } }),
				await cms("GET", "/api/v1/admin/notices/dead-letters", { token })
			];
			expect(refused.map(r => r.status)).toEqual([403, 403, 403, 403, 403, 403]);
			expect((await cms("GET", `/api/v1/admin/users/${customer.id}/sessions`, { token })).body).toEqual(sessions);
		},
		WALK_MS
	);

	it(
		"says the audit log is not available where the gateway has no audit route, and nothing else breaks",
		async () => {
			const { page, errors } = await openConsole();
			await page.route(
				url => url.pathname === "/api/v1/admin/audit",
				route =>
					route.fulfill({ status: 404, contentType: "application/json", body: JSON.stringify({ error: { code: "NOT_FOUND", message: "no such route" } }) })
			);
			await logIn(page, "console-support");
			await page.locator('[data-nav="audit"]').click();
			await page.locator('[data-state="unavailable"]').waitFor();
			expect(await page.locator('[data-state="unavailable"]').textContent()).toBe("The audit log is not available on this gateway.");
			await shoot(page, "support-audit-unavailable");
			// The one error: the 404 this test answered in the gateway's place.
			expect(errors.map(e => e.replace(/\(http[^)]*\)/, "(…)"))).toEqual([
				"Failed to load resource: the server responded with a status of 404 (Not Found) (…)"
			]);
		},
		WALK_MS
	);
});
