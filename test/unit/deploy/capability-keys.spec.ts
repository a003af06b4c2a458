import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CHANNELS_SERVICE } from "../../../mixins/channels/index.ts";
import { loadRegions } from "../../../regions/loader.ts";
import { SERVICES } from "../../../services/index.ts";
import { restrictedOf } from "./restricted-actions.ts";
import { checkCapabilityKeys, composePath, DEPLOY, parseCompose, ROOT } from "./stack-checks.ts";

/**
 * The keys of the restricted actions as deploy/ hands them out: deploy/README.md makes a key for
 * every capability the services restrict something to and says what each one restricts, and every
 * group that runs a restricted action gets the keys. A node missing a key it needs does not start,
 * so a stack brought up as the README says must hold them all.
 */
const REGION_IDS = loadRegions(join(ROOT, "regions", "definitions")).map(r => r.id);
/** Every node runs `$channels` beside its services. */
const RESTRICTED = [...Object.entries(SERVICES).flatMap(([name, schema]) => restrictedOf(schema, name)), ...restrictedOf(CHANNELS_SERVICE)];
const EVERY_NODE = restrictedOf(CHANNELS_SERVICE).map(r => r.capability);
/** The source a service's node runs: its folder, the files beside the services it imports (a gateway's route tables), and the gateway mixin's for the gateways. */
function sourceOf(service: string): string {
	const dir = join(ROOT, "services", service);
	const files = readdirSync(dir).map(f => join(dir, f));
	const folder = files.map(f => readFileSync(f, "utf8")).join("\n");
	const shared = [...new Set([...folder.matchAll(/from "\.\.\/([a-z-]+\.ts)"/g)].map(m => m[1]!))].map(f => readFileSync(join(ROOT, "services", f), "utf8"));
	const own = [folder, ...shared].join("\n");
	if (!own.includes("gateway.mixin.ts")) return own;
	const gateway = join(ROOT, "mixins", "gateway");
	return [own, ...readdirSync(gateway).map(f => readFileSync(join(gateway, f), "utf8"))].join("\n");
}
/** Per service, the capabilities of the restricted actions it calls by name (a gateway's logout, a WeChat login's registration). */
const CALLS: Record<string, string[]> = Object.fromEntries(
	Object.keys(SERVICES).map(name => {
		const source = sourceOf(name);
		return [name, [...new Set(RESTRICTED.filter(r => r.kind === "action" && source.includes(`"${r.name}"`)).map(r => r.capability))].sort()];
	})
);
/** Per service, the capabilities its node must hold: those it runs and those it calls. */
const CAPABILITIES: Record<string, string[]> = Object.fromEntries(
	Object.entries(SERVICES).map(([name, schema]) => [name, [...new Set([...restrictedOf(schema, name).map(r => r.capability), ...CALLS[name]!, ...EVERY_NODE])]])
);
const ALL = [...new Set(RESTRICTED.map(r => r.capability))].sort();
const README = readFileSync(join(DEPLOY, "README.md"), "utf8");

/** The rows of the README's capability table, by capability. */
const ROWS = new Map(
	README.split("\n").flatMap(line => {
		const m = /^\| `([a-z][a-z0-9-]*)` \|/.exec(line);
		return m ? [[m[1]!, line] as const] : [];
	})
);

const readCompose = (id: string) => parseCompose(readFileSync(composePath(id), "utf8"));

describe("the move machinery", () => {
	it("is restricted to the move capability: sv-region's handover and moves, and every participant's move actions", () => {
		const move = RESTRICTED.filter(r => r.capability === "move").map(r => r.name);
		expect(move).toEqual(expect.arrayContaining(["sv-region.handover", "sv-region.move", "sv-region.startMove"]));
		for (const participant of ["auth-jwt", "auth-rbac", "sv-user"])
			for (const action of ["export", "import", "count", "delete"]) expect(move).toContain(`${participant}.move.${action}`);
		// Read-only and keyed by a random id: see deploy/README.md.
		expect(RESTRICTED.map(r => r.name)).not.toContain("sv-region.moveProgress");
	});
});

describe("the writes behind the public ways in", () => {
	const restricted = (capability: string) => RESTRICTED.filter(r => r.capability === capability).map(r => r.name);

	it("take the directory capability: sv-region's identity writes and sv-user's enrolment and changes", () => {
		expect(restricted("directory").sort()).toEqual(
			[
				"sv-region.register",
				"sv-region.unregister",
				"sv-region.reserve",
				"sv-region.release",
				"sv-region.locate",
				"sv-user.create",
				"sv-user.update",
				"sv-user.registerWechat",
				"sv-user.hasProfile"
			].sort()
		);
	});

	it("take login for the password checks past the throttle, mint for ending a session, config for configuration", () => {
		expect(restricted("login").sort()).toEqual(["auth-jwt.authenticate", "sv-user.checkPassword", "sv-user.verify"]);
		expect(restricted("mint")).toContain("auth-jwt.endSession");
		expect(restricted("config").sort()).toEqual(["sv-config.rollback", "sv-config.set"]);
	});

	it("are called from the gateways (a logout ends its session, PATCH /me changes identities, a transfer pays, a notice is marked read) and auth-jwt's WeChat login, which so need the keys", () => {
		for (const gateway of ["api-www", "api-app", "api-wx"]) expect(CALLS[gateway], gateway).toEqual(["directory", "files", "mint", "money", "notice"]);
		expect(CALLS["api-cms"]).toEqual(["directory", "files", "grant", "mint", "money", "move", "notice"]);
		expect(CALLS["auth-jwt"]).toEqual(expect.arrayContaining(["directory", "login"]));
	});

	it("stay open where the caller presents a secret that cannot be guessed on the bus, or registers as anyone may", () => {
		const open = ["auth-jwt.login", "auth-jwt.refresh", "auth-jwt.rotate", "auth-jwt.logout", "auth-jwt.wxLogin", "sv-user.register"];
		for (const name of open) expect(RESTRICTED.map(r => r.name)).not.toContain(name);
	});
});

describe("deploy/README.md", () => {
	it("makes a key for every capability in its key command, and its variable table names them all", () => {
		const command = README.split("\n").find(l => l.startsWith("export EDGEHOME_CAPABILITY_KEYS="));
		const made = [...(command ?? "").matchAll(/([a-z][a-z0-9-]*):\$\(openssl rand -base64 32\)/g)].map(m => m[1]).sort();
		expect(made).toEqual(ALL);
		const variable = README.split("\n").find(l => l.startsWith("| `EDGEHOME_CAPABILITY_KEYS`")) ?? "";
		for (const capability of ALL) expect(variable).toContain(`${capability}:<base64>`);
	});

	it("has a row for each capability, naming everything restricted to it", () => {
		expect([...ROWS.keys()].sort()).toEqual(ALL);
		for (const { capability, name } of RESTRICTED) {
			const row = ROWS.get(capability) ?? "";
			const service = name.slice(0, name.indexOf("."));
			const local = name.slice(name.indexOf(".") + 1);
			expect(row.includes(`\`${name}\``) || (row.includes(`\`${local}\``) && row.includes(service)), `${name} in the ${capability} row`).toBe(true);
		}
	});
});

describe.each(REGION_IDS)("the %s stack", id => {
	it("gives every group that runs a restricted action the keys, from the required variable", () => {
		expect(checkCapabilityKeys(readCompose(id), composePath(id), CAPABILITIES)).toEqual([]);
	});

	it("would be caught giving a group none, or a key written down", () => {
		for (const keys of [undefined, "move:AAAA"]) {
			const compose = readCompose(id);
			const env = compose.services!.core!.environment as Record<string, unknown>;
			if (keys === undefined) delete env.EDGEHOME_CAPABILITY_KEYS;
			else env.EDGEHOME_CAPABILITY_KEYS = keys;
			expect(checkCapabilityKeys(compose, composePath(id), CAPABILITIES), String(keys)).toEqual([expect.stringMatching(/^service core: .*\bmove\b/)]);
		}
	});
});
