import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RegionNode } from "../../../app/node.ts";
import { startRegionNode } from "../../../app/node.ts";
import { openSqliteDirectory } from "../../../regions/directory/sqlite-store.ts";
import type { DirectoryStore } from "../../../regions/directory/store.ts";
import { loadRegions } from "../../../regions/loader.ts";
import { launcherEnv, runId } from "../../harness/real-servers.ts";
import type { UnreachableOrigin } from "../../harness/unreachable-origin.ts";
import { unreachableOrigin } from "../../harness/unreachable-origin.ts";

const run = runId();
// The regions here run different services (sv-user only in ap-south): a move copies none of them, by configuration.
const env = launcherEnv(run, { EDGEHOME_MOVE_PARTICIPANTS: "", EDGEHOME_GLOBAL_PROBE_MS: "100" });
let euNode: RegionNode;
let cnNode: RegionNode;
let apNode: RegionNode;
let store: DirectoryStore;
/** cn-east's view of the shared directory, whose origin a test cuts off. */
let cnDirectory: UnreachableOrigin;
let userId: string;
let repl: ChildProcess;
let output = "";

async function until(pattern: RegExp, ms = 10_000): Promise<void> {
	const deadline = Date.now() + ms;
	while (!pattern.test(output)) {
		if (Date.now() > deadline) throw new Error(`REPL never printed ${pattern}; it printed:\n${output}`);
		await new Promise(r => setTimeout(r, 50));
	}
}

/** Runs `region status` and waits for its whole answer: the facts come first, the regions last. */
async function regionStatus(): Promise<void> {
	output = "";
	repl.stdin!.write("region status\n");
	for (const id of ["cn-east", "eu-central", "ap-south"]) await until(new RegExp(`${id}\\s+\\w+\\s+since`));
}

beforeAll(async () => {
	// Both regions' nodes share one directory, as every region shares the global one.
	store = await openSqliteDirectory(":memory:");
	const blindIndexKey = randomBytes(32);
	cnDirectory = unreachableOrigin(store);
	const start = (id: string, services: string[], own: DirectoryStore = store) =>
		startRegionNode({
			region: loadRegions().find(r => r.id === id)!,
			transport: "nats",
			services,
			stores: { sql: "sqlite::memory:", keyPrefix: `repl-${id}:` },
			directory: { store: own, blindIndexKey },
			env,
			overrides: { logger: false }
		});
	euNode = await start("eu-central", ["sv-config", "sv-region"]);
	cnNode = await start("cn-east", ["sv-region"], cnDirectory);
	apNode = await start("ap-south", ["sv-region", "sv-user", "auth-rbac"]);
	userId = (
		await cnNode.broker.call<{ userId: string }, unknown>("sv-region.register", { identities: [{ kind: "username", value: "repl-ann" }], country: "KR" })
	).userId;
	repl = spawn(process.execPath, ["app/launch/repl.ts", "--region", "cn-east"], {
		// A service group's environment, its collector URL included (deploy/README.md runs the console so): the console traces nothing.
		env: { ...env, ADMIN_PASSWORD: "repl admin passphrase", EDGEHOME_OTLP_URL: "http://127.0.0.1:9/v1/traces" },
		stdio: ["pipe", "pipe", "pipe"]
	});
	repl.stdout!.on("data", d => (output += d));
	repl.stderr!.on("data", d => (output += d));
	await until(/cn-east \$/);
});

afterAll(async () => {
	repl?.kill("SIGKILL");
	await apNode?.stop();
	await cnNode?.stop();
	await euNode?.stop();
	await store?.close();
});

describe("npm run repl", () => {
	it("lists the regions with the project's own command", async () => {
		repl.stdin!.write("region list\n");
		await until(/eu-central\s+Europe Central\s+countries=30 pinned=27/);
		expect(output).toMatch(/cn-east\s+China East .*\(this REPL\)/);
	});

	it("reaches another region's nodes through a link", async () => {
		repl.stdin!.write("region nodes eu-central\n");
		await until(new RegExp(`eu-central ${euNode.broker.nodeID}\\s+services=sv-config,sv-region`));
	});

	it("tells where a user lives, by id or by identity", async () => {
		repl.stdin!.write(`region which ${userId}\n`);
		await until(new RegExp(`${userId} home=cn-east epoch=1 state=active`));
		output = "";
		repl.stdin!.write("region which username:repl-ann\n");
		await until(new RegExp(`${userId} home=cn-east epoch=1`));
		repl.stdin!.write("region which email:nobody@example.com\n");
		await until(/error: no user has this email/);
	});

	it("shows every region's reachability", async () => {
		repl.stdin!.write("region status\n");
		await until(/eu-central\s+up\s+since/);
		expect(output).toMatch(/cn-east\s+up\s+since .*\(answering node's region\)/);
	});

	it("says what the answering node can do, one fact a line, global operations following the directory's origin", async () => {
		await regionStatus();
		expect(output).toMatch(new RegExp(`region\\s+cn-east \\(node ${cnNode.broker.nodeID}\\)\\n`));
		expect(output).toMatch(/serving\s+own-users\n/);
		expect(output).toMatch(/global operations\s+available since \d{4}-\d\d-\d\dT/);
		expect(output).toMatch(/bus\s+connected\n/);

		cnDirectory.cut();
		try {
			for (let tries = 0; !/global operations\s+unavailable since/.test(output); tries++) {
				if (tries === 20) throw new Error(`global operations never shown unavailable:\n${output}`);
				await regionStatus();
			}
			// Cut off from the origin, the region still serves its own users.
			expect(output).toMatch(/serving\s+own-users\n/);
		} finally {
			cnDirectory.reach();
		}
	});

	it("moves a user and reports the new epoch", async () => {
		repl.stdin!.write(`region move ${userId} eu-central\n`);
		await until(new RegExp(`moved ${userId} from cn-east to eu-central, epoch 2`));
		expect(await cnNode.broker.call("sv-region.lookup", { userId })).toMatchObject({ region: "eu-central", epoch: 2 });
	});

	it("counts users per region and shows each node's cache and routing", async () => {
		repl.stdin!.write("region stats\n");
		await until(/users: .*eu-central=1.* total=1/);
		await until(new RegExp(`${cnNode.broker.nodeID}\\s+lookups=\\d+ cache=\\d+ hit=[\\d.]+% local=\\d+ forwards: `));
	});

	it("creates an administrator in another region, the password from ADMIN_PASSWORD or generated and shown once", async () => {
		output = "";
		repl.stdin!.write("admin create ops-root --region ap-south --password-from-env\n");
		await until(/created administrator ops-root \(([0-9a-z]{26})\) in ap-south\npassword: from ADMIN_PASSWORD/);
		const rootId = /ops-root \(([0-9a-z]{26})\)/.exec(output)![1]!;
		expect(await apNode.broker.call("auth-rbac.rolesOf", { userId: rootId })).toMatchObject({ direct: ["admin"] });
		expect(await apNode.broker.call("sv-user.checkPassword", { login: "ops-root", password: "repl admin passphrase" })).toEqual({ userId: rootId });
		output = "";
		repl.stdin!.write("admin create ops-two --region ap-south\n");
		await until(/password \(shown this once\): \S{24}/);
		const password = /password \(shown this once\): (\S{24})/.exec(output)![1]!;
		expect(await apNode.broker.call("sv-user.checkPassword", { login: "ops-two", password })).toHaveProperty("userId");
		repl.stdin!.write("admin create ops-two --region ap-south\n");
		await until(/ops-two already exists \([0-9a-z]{26}\); nothing changed/);
	});

	it("names the field a command got wrong", async () => {
		output = "";
		repl.stdin!.write("region move not-a-user-id eu-central\n");
		await until(/error: invalid userId: /);
	});

	it("lists the metrics of the console's own calls", async () => {
		output = "";
		repl.stdin!.write("metrics -f moleculer.request.total\n");
		await until(/moleculer\.request\.total\s*│\s*counter\s*│.*sv-region\.status/);
		expect(output).not.toMatch(/disabled/);
	});

	it("explains an unknown sub-command instead of failing", async () => {
		repl.stdin!.write("region teleport\n");
		await until(/unknown sub-command "teleport"; try: region which .* region list/);
	});

	it("quits cleanly", async () => {
		const exited = once(repl, "exit");
		repl.stdin!.write("quit\n");
		const [code] = await exited;
		expect(code).toBe(0);
	});
});

describe("npm run repl with no region node on its NATS", () => {
	it("says so and points at the embedded console, instead of failing later with 'not found'", async () => {
		const lonely = spawn(process.execPath, ["app/launch/repl.ts", "--region", "cn-east"], {
			env: { ...env, EDGEHOME_NAMESPACE_PREFIX: `t${run}-nobody-` },
			stdio: ["pipe", "pipe", "pipe"]
		});
		let printed = "";
		lonely.stdout!.on("data", d => (printed += d));
		try {
			const deadline = Date.now() + 15_000;
			while (!/no node of cn-east is on this NATS/.test(printed)) {
				if (Date.now() > deadline) throw new Error(`the REPL printed:\n${printed}`);
				await new Promise(r => setTimeout(r, 100));
			}
			expect(printed).toContain("npm start -- --repl");
		} finally {
			lonely.kill("SIGKILL");
		}
	});
});
