import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { connect as connectTcp } from "node:net";
import { ServiceBroker } from "moleculer";
import { connect } from "nats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { brokerConfig } from "../../../app/broker.config.ts";
import type { RegionNode } from "../../../app/node.ts";
import { startRegionNode } from "../../../app/node.ts";
import type { NatsKvDirectoryStore } from "../../../regions/directory/nats-kv-store.ts";
import { openNatsKvDirectory } from "../../../regions/directory/nats-kv-store.ts";
import { findRegion, loadRegions } from "../../../regions/loader.ts";
import { natsCredentials } from "../../../regions/runtime/bus-credentials.ts";
import { cleanupRealStores, realStores, runId } from "../../harness/real-servers.ts";
import type { SecureNats } from "../../harness/secure-nats.ts";
import { startSecureNats } from "../../harness/secure-nats.ts";
import { failureOf, within } from "../../harness/waiting.ts";

/**
 * The bus as deployed: a real nats-server with the shipped client TLS and users
 * (deploy/nats/auth.conf, certificates from deploy/nats/make-certs.sh), a region node logged in
 * as `service` with the capability keys, and intruders that hold less.
 */
const run = runId();
const regions = loadRegions();
const region = findRegion(regions, "cn-east");
const stores = realStores(run, "cn-east");
const key = () => randomBytes(32).toString("base64");
const capabilityKeys = `mint:${key()},grant:${key()}`;
let nats: SecureNats;
let store: NatsKvDirectoryStore;
let node: RegionNode;
let greta: { id: string };
const guests: ServiceBroker[] = [];

const envOf = (user: "service" | "ops", extra: Record<string, string> = {}) => ({
	EDGEHOME_NATS_URL: nats.url,
	EDGEHOME_NATS_USER: user,
	EDGEHOME_NATS_PASSWORD: user === "service" ? nats.passwords.NATS_SERVICE_PASSWORD : nats.passwords.NATS_OPS_PASSWORD,
	EDGEHOME_NATS_CA: nats.caFile,
	EDGEHOME_NAMESPACE_PREFIX: `t${run}-`,
	EDGEHOME_METRICS_PORT: "off",
	EDGEHOME_CACHER: "off",
	...extra
});

/** A service-less node of the region, configured as any node is (broker.config.ts). */
async function guest(name: string, env: Record<string, string>): Promise<ServiceBroker> {
	const b = new ServiceBroker({
		...brokerConfig({ region, group: name, transport: "nats", env: { ...env, EDGEHOME_NODE_ID: `${name}-${run}` } }),
		logger: false
	});
	guests.push(b);
	await b.start();
	await b.waitForServices(["auth-jwt", "auth-rbac"], 10_000);
	return b;
}

const to = () => ({ nodeID: node.broker.nodeID });
const sessionsOf = async (userId: string) =>
	(
		await node.stores.sql.db
			.selectFrom("auth_sessions" as never)
			.select("sid" as never)
			.where("user_id" as never, "=", userId as never)
			.execute()
	).length;
const rolesOf = async (userId: string) => (await node.broker.call<{ direct: string[] }, unknown>("auth-rbac.rolesOf", { userId })).direct;
const userPermissions = async () =>
	(await node.broker.call<{ permissions: { resource: string; action: string }[] }, unknown>("auth-rbac.permissionsOf", { role: "user" })).permissions;

beforeAll(async () => {
	nats = await startSecureNats();
	const env = envOf("service", { EDGEHOME_CAPABILITY_KEYS: capabilityKeys });
	store = await openNatsKvDirectory({ servers: nats.url, bucket: `t-${run}-directory`, credentials: natsCredentials(env) });
	node = await startRegionNode({
		region,
		regions,
		transport: "nats",
		group: "core",
		services: ["sv-region", "sv-user", "auth-jwt", "auth-rbac"],
		stores,
		directory: { store, blindIndexKey: randomBytes(32) },
		env,
		overrides: { logger: false }
	});
	greta = await node.broker.call("sv-user.register", { username: "greta", password: "fjord walk 42", country: "CN" });
}, 60_000);

afterAll(async () => {
	for (const b of guests) await b.stop();
	await node?.stop();
	await store?.close();
	await cleanupRealStores(stores);
	await nats?.stop();
});

describe("the NATS server of a region", () => {
	const ca = () => readFileSync(nats.caFile, "utf8");

	it("refuses a client with no credentials, a wrong password or an unknown user", async () => {
		for (const login of [{}, { user: "service", pass: "wrong" }, { user: "intruder", pass: nats.passwords.NATS_SERVICE_PASSWORD }]) {
			const err = await failureOf(connect({ servers: nats.url, tls: { ca: ca() }, ...login, maxReconnectAttempts: 0 }));
			expect((err as { code?: string }).code, JSON.stringify(login)).toBe("AUTHORIZATION_VIOLATION");
		}
	});

	it("refuses a client that speaks without TLS, even with the right password", async () => {
		const answer = await new Promise<string>((resolve, reject) => {
			const socket = connectTcp({ host: "127.0.0.1", port: Number(new URL(nats.url).port) });
			let text = "";
			socket.on("data", d => {
				text += d.toString();
				if (text.startsWith("INFO") && text.includes("\r\n") && !text.includes("CONNECT_SENT")) {
					text += "CONNECT_SENT";
					socket.write(`CONNECT {"user":"service","pass":"${nats.passwords.NATS_SERVICE_PASSWORD}","verbose":false}\r\nPING\r\n`);
				}
			});
			socket.on("close", () => resolve(text));
			socket.on("error", reject);
			setTimeout(() => socket.destroy(), 5000);
		});
		expect(answer).toMatch(/"tls_required":true/);
		// The server takes the plain-text CONNECT as a failed TLS handshake and hangs up: no PONG.
		expect(answer).not.toMatch(/PONG|\+OK/);
	});

	it("refuses a client that does not trust the edgehome CA (no TLS to a server it cannot verify)", async () => {
		const err = await failureOf(connect({ servers: nats.url, user: "service", pass: nats.passwords.NATS_SERVICE_PASSWORD, maxReconnectAttempts: 0 }));
		expect(err.type).not.toBe("(succeeded)");
	});

	it("keeps the ops user (the REPL) away from JetStream, where the directory lives", async () => {
		const nc = await connect({ servers: nats.url, tls: { ca: ca() }, user: "ops", pass: nats.passwords.NATS_OPS_PASSWORD });
		try {
			const err = await failureOf((async () => (await nc.jetstreamManager({ timeout: 1000 })).streams.list().next())());
			expect(err.type).not.toBe("(succeeded)");
		} finally {
			await nc.close();
		}
	});
});

describe("a node on the bus without the capability", () => {
	let intruder: ServiceBroker;
	beforeAll(async () => {
		intruder = await guest("intruder", envOf("service"));
	});

	it("cannot open a session for someone else: CAPABILITY_REQUIRED, and no session is made", async () => {
		const before = await sessionsOf(greta.id);
		const err = await failureOf(intruder.call("auth-jwt.openSession", { userId: greta.id, client: "app" }, to()));
		expect(err).toMatchObject({ type: "CAPABILITY_REQUIRED", code: 403, data: { name: "auth-jwt.openSession", capability: "mint", reason: "missing" } });
		expect(await sessionsOf(greta.id)).toBe(before);
	});

	it("cannot grant itself a role: CAPABILITY_REQUIRED, and the grant is not stored", async () => {
		const err = await failureOf(intruder.call("auth-rbac.grant", { userId: greta.id, role: "admin" }, to()));
		expect(err).toMatchObject({ type: "CAPABILITY_REQUIRED", code: 403, data: { capability: "grant" } });
		expect(await rolesOf(greta.id)).not.toContain("admin");
	});

	it("changes nothing with a forged permissionChanged, as if relayed from another region", async () => {
		await intruder.broadcast(
			"auth-rbac.permissionChanged",
			{ op: "add", role: "user", resource: "users", action: "delete" },
			{ meta: { $globalFrom: "eu-central" } }
		);
		await new Promise(r => setTimeout(r, 1000));
		expect(await userPermissions()).not.toContainEqual(expect.objectContaining({ resource: "users", action: "delete" }));
	});

	it("gets nowhere with keys of its own", async () => {
		const forger = await guest("forger", envOf("service", { EDGEHOME_CAPABILITY_KEYS: `mint:${key()},grant:${key()}` }));
		expect(await failureOf(forger.call("auth-rbac.grant", { userId: greta.id, role: "admin" }, to()))).toMatchObject({
			type: "CAPABILITY_REQUIRED",
			data: { reason: "invalid" }
		});
		expect(await rolesOf(greta.id)).not.toContain("admin");
	});
});

describe("a node holding the capability", () => {
	it("opens sessions and changes grants, logged in as the ops user with the keys (the REPL)", async () => {
		const ops = await guest("ops", envOf("ops", { EDGEHOME_CAPABILITY_KEYS: capabilityKeys }));
		const before = await sessionsOf(greta.id);
		await expect(ops.call("auth-jwt.openSession", { userId: greta.id, client: "app" }, to())).resolves.toMatchObject({ tokenType: "Bearer", userId: greta.id });
		expect(await sessionsOf(greta.id)).toBe(before + 1);
		await expect(ops.call("auth-rbac.grant", { userId: greta.id, role: "support" }, to())).resolves.toMatchObject({ changed: true });
		expect(await rolesOf(greta.id)).toContain("support");
	});

	it("relays a permission change from another region (the event the intruder forged, signed)", async () => {
		const ops = guests.find(b => b.nodeID.startsWith("ops-"))!;
		await ops.broadcast(
			"auth-rbac.permissionChanged",
			{ op: "add", role: "user", resource: "users", action: "delete" },
			{ meta: { $globalFrom: "eu-central" } }
		);
		await within(async () => (await userPermissions()).some(p => p.resource === "users" && p.action === "delete"), 2000);
	});
});
