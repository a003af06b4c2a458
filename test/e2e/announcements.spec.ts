import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RegionNode } from "../../app/node.ts";
import type { EmbeddedRegions } from "../harness/embedded-regions.ts";
import { everyFeedHeard, startEmbeddedRegions } from "../harness/embedded-regions.ts";
import { gatewaySchemas, gatewayUrl, http } from "../harness/gateways.ts";
import { within } from "../harness/waiting.ts";
import { expectError } from "./expect-error.ts";

/*
 * Announcements through the real api-cms gateway of cn-east: only admins announce (ops is
 * refused), the announcement reaches every user of the regions named and no other, its progress
 * is read back, and bad requests are refused writing nothing.
 */

const nodes: Record<string, RegionNode> = {};
let cluster: EmbeddedRegions | undefined;
const cms = (method: string, path: string, opts?: Parameters<typeof http>[3]) => http(gatewayUrl(nodes["cn-east"]!.broker, "api-cms"), method, path, opts);
const token = { admin: "", ops: "" };
const ANNOUNCEMENTS = "/api/v1/admin/announcements";

async function register(username: string, password: string, country: string): Promise<string> {
	const res = await cms("POST", "/api/v1/auth/register", { body: { username, password, country } });
	expect(res.status, res.text).toBe(201);
	return res.body.id;
}

/** Announcement entries written in `region`. */
async function entriesIn(region: string): Promise<{ user_id: string; title: string }[]> {
	return (await nodes[region]!.stores.sql.db.selectFrom("notice_inbox").select(["user_id", "title"]).where("category", "=", "announcement").execute()) as {
		user_id: string;
		title: string;
	}[];
}

beforeAll(async () => {
	cluster = await startEmbeddedRegions({
		namespacePrefix: "announcements-",
		services: ["sv-region", "sv-user", "auth-jwt", "auth-rbac", "sv-notice"],
		schemas: gatewaySchemas()
	});
	Object.assign(nodes, cluster.nodes);
	await everyFeedHeard(cluster, 10_000);
	for (const role of ["admin", "ops"] as const) {
		const password = `${role} announces 1`;
		const id = await register(`announce-${role}`, password, "CN");
		await nodes["cn-east"]!.broker.call("auth-rbac.grant", { userId: id, role });
		token[role] = (await cms("POST", "/api/v1/auth/login", { body: { login: `announce-${role}`, password } })).body.accessToken;
	}
	await register("announce-hans", "reads the news 1", "DE");
	await register("announce-greta", "reads the news 2", "DE");
}, 60_000);

afterAll(() => cluster?.stop());

describe("api-cms announcements", () => {
	it("refuses ops (403), an unknown region, an oversized title or body (400), announcing nothing", async () => {
		const body = { title: "Hi", body: "All of you", audience: {} };
		expectError(await cms("POST", ANNOUNCEMENTS, { token: token.ops, body }), 403, "FORBIDDEN");
		expectError(await cms("POST", ANNOUNCEMENTS, { token: token.admin, body: { ...body, audience: { regions: ["us-west"] } } }), 400, "VALIDATION_FAILED");
		expectError(await cms("POST", ANNOUNCEMENTS, { token: token.admin, body: { ...body, title: "x".repeat(201) } }), 400, "VALIDATION_FAILED");
		expectError(await cms("POST", ANNOUNCEMENTS, { token: token.admin, body: { ...body, body: "x".repeat(5001) } }), 400, "VALIDATION_FAILED");
		expectError(await cms("GET", `${ANNOUNCEMENTS}/${randomUUID()}`, { token: token.admin }), 404, "ANNOUNCEMENT_NOT_FOUND");
		for (const region of ["cn-east", "eu-central"]) expect(await entriesIn(region)).toEqual([]);
	});

	it("announces to eu-central's users only, and reports the progress there", async () => {
		const started = await cms("POST", ANNOUNCEMENTS, {
			token: token.admin,
			body: { title: "Maintenance", body: "Tonight", audience: { regions: ["eu-central"] } }
		});
		expect(started.status, started.text).toBe(202);
		expect(started.headers.get("location")).toBe(`${ANNOUNCEMENTS}/${started.body.id}`);
		const progress = async () => (await cms("GET", `${ANNOUNCEMENTS}/${started.body.id}`, { token: token.admin })).body;
		await within(async () => (await progress()).regions["eu-central"]?.done === true, 15_000);
		expect(await progress()).toMatchObject({
			id: started.body.id,
			title: "Maintenance",
			regions: { "eu-central": { targeted: 2, written: 2, pushed: 2, failed: 0, done: true } }
		});
		expect(Object.keys((await progress()).regions)).toEqual(["eu-central"]);
		expect((await entriesIn("eu-central")).map(e => e.title)).toEqual(["Maintenance", "Maintenance"]);
		expect(await entriesIn("cn-east")).toEqual([]);
	});
});
