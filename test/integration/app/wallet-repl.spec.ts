import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RegionNode } from "../../../app/node.ts";
import { startRegionNode } from "../../../app/node.ts";
import { openSqliteDirectory } from "../../../regions/directory/sqlite-store.ts";
import type { DirectoryStore } from "../../../regions/directory/store.ts";
import { loadRegions } from "../../../regions/loader.ts";
import { launcherEnv, runId } from "../../harness/real-servers.ts";
import type { ReplConsole } from "../../harness/repl-console.ts";
import { startReplConsole } from "../../harness/repl-console.ts";

/*
 * `wallet show` and `wallet reconcile` of `npm run repl` on cn-east, over NATS: cn-east and
 * eu-central run sv-money; ap-south runs nothing, so a reconciliation of every region shows one
 * that cannot answer without hiding the others.
 */

const run = runId();
const env = launcherEnv(run, { EDGEHOME_MOVE_PARTICIPANTS: "" });
let cnNode: RegionNode;
let euNode: RegionNode;
let store: DirectoryStore;
let ann: string;
let bo: string;
let repl: ReplConsole;

async function register(node: RegionNode, username: string, country: string): Promise<string> {
	const res = await node.broker.call<{ userId: string }, unknown>("sv-region.register", { identities: [{ kind: "username", value: username }], country });
	return res.userId;
}

const adjust = (userId: string, amount: string, currency: string) =>
	cnNode.broker.call("sv-money.adjust", { userId, amount, currency, reason: "repl test", operator: bo });

beforeAll(async () => {
	store = await openSqliteDirectory(":memory:");
	const blindIndexKey = randomBytes(32);
	const start = (id: string) =>
		startRegionNode({
			region: loadRegions().find(r => r.id === id)!,
			transport: "nats",
			services: ["sv-region", "sv-money"],
			stores: { sql: "sqlite::memory:", keyPrefix: `wallet-repl-${id}:` },
			directory: { store, blindIndexKey },
			env,
			overrides: { logger: false }
		});
	cnNode = await start("cn-east");
	euNode = await start("eu-central");
	ann = await register(cnNode, "wallet-ann", "DE");
	bo = await register(cnNode, "wallet-bo", "CN");
	await adjust(ann, "12345", "EUR");
	await adjust(ann, "700", "JPY");
	await adjust(bo, "100", "CNY");
	repl = await startReplConsole("cn-east", env);
}, 60_000);

afterAll(async () => {
	repl?.kill();
	await euNode?.stop();
	await cnNode?.stop();
	await store?.close();
});

describe("npm run repl: wallet", () => {
	it("shows a wallet homed in another region by user id, username or identity: its state and each currency's balance", async () => {
		const expected = [
			`${ann} home=eu-central active (amounts in minor units)`,
			"  EUR  balance=12345 available=12345 pending=0",
			"  JPY  balance=700 available=700 pending=0"
		].join("\n");
		expect(await repl.typed(`wallet show ${ann}`, /JPY {2}balance/)).toContain(expected);
		expect(await repl.typed("wallet show wallet-ann", /JPY {2}balance/)).toContain(expected);
		expect(await repl.typed("wallet show username:wallet-ann", /JPY {2}balance/)).toContain(expected);
	});

	it("marks a frozen wallet, and says when a user has no account yet", async () => {
		await cnNode.broker.call("sv-money.freeze", { userId: ann, reason: "repl test" });
		await repl.typed(`wallet show ${ann}`, new RegExp(`${ann} home=eu-central FROZEN`));
		await cnNode.broker.call("sv-money.unfreeze", { userId: ann });
		const carl = await register(euNode, "wallet-carl", "FR");
		await repl.typed("wallet show wallet-carl", new RegExp(`${carl} home=eu-central active \\(amounts in minor units\\)\\n {2}no accounts yet`));
	});

	it("answers an unknown user or a bad argument with one line", async () => {
		await repl.typed("wallet show nobody-here", /error: .*\((IDENTITY_NOT_FOUND|USER_NOT_FOUND)\)/);
		await repl.typed("wallet show", /usage: wallet show <userId\|username\|kind:value>/);
		await repl.typed("wallet show iban:DE00", /error: give a user id, a username or username\|email\|phone\|wechat:<value>/);
		await repl.typed("wallet reconcile mars-1", /unknown region "mars-1"; known: /);
		await repl.typed("wallet audit", /unknown sub-command "audit"; try: wallet show <userId\|username\|kind:value> \| wallet reconcile \[regionId\]/);
	});

	it("reconciles one region: a line per currency summing to 0, and the verdict", async () => {
		const printed = await repl.typed("wallet reconcile eu-central", /reconciliation (ok|FAILED) in/);
		expect(printed).toMatch(/eu-central\s+EUR {2}sum=0\s+ok\n/);
		expect(printed).toMatch(/eu-central\s+JPY {2}sum=0\s+ok\n/);
		expect(printed).toMatch(/eu-central\s+ok: accounts=\d+ currencies=2 checked \d{4}-\d\d-\d\dT/);
		expect(printed).toContain("reconciliation ok in 1 region(s)");
	});

	it("reconciles every region by default, a region that cannot answer marked FAILED without hiding the others", async () => {
		const printed = await repl.typed("wallet reconcile", /reconciliation (ok|FAILED) in/, 60_000);
		expect(printed).toMatch(/cn-east\s+CNY {2}sum=0\s+ok\n/);
		expect(printed).toMatch(/cn-east\s+ok: /);
		expect(printed).toMatch(/eu-central\s+ok: /);
		expect(printed).toMatch(/ap-south\s+FAILED: error: /);
		expect(printed).toContain("reconciliation FAILED in 1 of 3 region(s): ap-south");
	});

	it("lists a balance that its entries do not explain, and fails the region", async () => {
		// What no code path may do: change a balance without an entry.
		const db = euNode.stores.sql.db;
		await db.updateTable("money_accounts").set({ balance: 12346 }).where("owner_id", "=", ann).where("currency", "=", "EUR").execute();
		try {
			const printed = await repl.typed("wallet reconcile eu-central", /reconciliation (ok|FAILED) in/);
			expect(printed).toMatch(/eu-central\s+EUR {2}sum=1\s+FAILED\n/);
			expect(printed).toContain(`eu-central   EUR  mismatch ${ann}: balance=12346 entries=12345`);
			expect(printed).toMatch(/eu-central\s+FAILED: accounts=\d+/);
			expect(printed).toContain("reconciliation FAILED in 1 of 1 region(s): eu-central");
		} finally {
			await db.updateTable("money_accounts").set({ balance: 12345 }).where("owner_id", "=", ann).where("currency", "=", "EUR").execute();
		}
		await repl.typed("wallet reconcile eu-central", /reconciliation ok in 1 region\(s\)/);
	});
});
