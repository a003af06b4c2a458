import { randomBytes } from "node:crypto";
import { copyFileSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { NatsConnection } from "nats";
import { connect } from "nats";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { CHANNELS_SERVICE } from "../../mixins/channels/index.ts";
import { checkNatsLogin, natsCredentials } from "../../regions/runtime/bus-credentials.ts";
import { SERVICES } from "../../services/index.ts";
import { whileDirectoryUnavailable } from "../harness/directory-retry.ts";
import { freePort } from "../harness/free-port.ts";
import type { KvNode } from "../harness/kv-node.ts";
import { startKvNode } from "../harness/kv-node.ts";
import { notesService } from "../harness/notes.service.ts";
import { runId } from "../harness/real-servers.ts";
import type { SecureEdges, ShippedRole, ShippedServer } from "../harness/secure-nats.ts";
import { certificateNaming, makeCertificates, plainTextLogin, startSecureEdges, startShippedServer } from "../harness/secure-nats.ts";
import { failureOf, within } from "../harness/waiting.ts";
import { restrictedOf } from "../unit/deploy/restricted-actions.ts";

/**
 * The NATS servers as shipped: deploy/nats/<region>.conf (edge) and hub-<region>.conf with auth.conf and
 * make-certs.sh's certificates, on loopback ports. Two regions run, their hub servers a quorum of the
 * three the configs name; the third region's hub address is where a rogue server turns up, with the
 * same config and certificates of a CA of its own.
 */
const PRIMARY = "cn-east";
const OTHER = "ap-south";
const REGIONS = [PRIMARY, OTHER];
/** Two hub servers run: the directory's origin gets a replica on each. */
const HUB_REPLICAS = 2;
const ROGUE_SLOT = "eu-central";
/** A country each region serves, so that registration homes a user in each. */
const COUNTRY: Record<string, string> = { "cn-east": "JP", "ap-south": "SG" };
const run = runId();
const blindIndexKey = randomBytes(32);
/** Every node also runs `$channels` (mixins/channels/ops.service.ts). */
const NODE_SERVICES = [SERVICES["sv-region"]!, notesService, CHANNELS_SERVICE];
/** A key of every capability the nodes' services restrict something to, the same in both regions. */
const capabilityKeys = [...new Set(NODE_SERVICES.flatMap(schema => restrictedOf(schema).map(r => r.capability)))]
	.map(capability => `${capability}:${randomBytes(32).toString("base64")}`)
	.join(",");
let cluster: SecureEdges;
const nodes: Record<string, KvNode> = {};
const rogues: ShippedServer[] = [];
const clients: NatsConnection[] = [];

const server = (region: string) => cluster.edges[region]!;
const hub = (region: string) => cluster.hubs[region]!;

/** What a node of `region` is given in production, logged in as `service` with `password`. */
const productionEnv = (region: string, password = server(region).passwords.NATS_SERVICE_PASSWORD) => ({
	NODE_ENV: "production",
	EDGEHOME_NATS_USER: "service",
	EDGEHOME_NATS_PASSWORD: password,
	EDGEHOME_NATS_CA: server(region).caFile,
	EDGEHOME_CAPABILITY_KEYS: capabilityKeys
});

/** A `service` client of `s`, trusting the CA that signed its certificate. */
async function client(s: ShippedServer, caFile = s.caFile): Promise<NatsConnection> {
	const nc = await connect({ servers: s.url, tls: { ca: readFileSync(caFile, "utf8") }, user: "service", pass: s.passwords.NATS_SERVICE_PASSWORD });
	clients.push(nc);
	return nc;
}

/**
 * A server of a shipped config (`role` of `region`) that trusts the edgehome CA, whose certificate is
 * public, so that it accepts the shipped servers and only their checks can keep it out. Its own
 * certificate is from another CA (make-certs.sh run elsewhere: `foreign`), or from the edgehome CA but
 * naming only `naming`. A rogue hub listens at the route and leaf-node ports named for `region`. Its
 * clients trust `caFile`.
 */
async function rogue(role: ShippedRole, region: string, certificate: "foreign" | { naming: string }) {
	const root = join(cluster.root, `rogue-${rogues.length}`);
	const pki = join(root, "pki");
	mkdirSync(join(root, "js"), { recursive: true });
	if (certificate === "foreign") makeCertificates(pki, [region]);
	else certificateNaming(join(cluster.root, "pki"), join(pki, region), certificate.naming);
	copyFileSync(join(cluster.root, "pki", "ca.crt"), join(pki, region, "ca.crt"));
	const ports = { client: await freePort(), http: await freePort(), ...cluster.hubPorts[region]! };
	const s = await startShippedServer({
		role,
		region,
		root,
		certs: pki,
		ports,
		hubs: cluster.hubPorts,
		storeDir: join(root, "js"),
		serverName: `${role}-${region}-rogue`
	});
	rogues.push(s);
	// A foreign server's clients trust its own CA; one with a certificate of the edgehome CA is trusted like the regions'.
	return { server: s, caFile: certificate === "foreign" ? join(pki, "ca.crt") : join(cluster.root, "pki", "ca.crt") };
}

/** Each speaker publishes its name on `subject` every 100 ms for `ms`; resolves with the names `listener` heard. */
async function crossTalk(listener: NatsConnection, subject: string, speakers: Record<string, NatsConnection>, ms = 2000): Promise<Set<string>> {
	const heard = new Set<string>();
	const sub = listener.subscribe(subject, { callback: (_, msg) => heard.add(msg.string()) });
	await listener.flush();
	for (let elapsed = 0; elapsed < ms; elapsed += 100) {
		for (const [text, nc] of Object.entries(speakers)) nc.publish(subject, text);
		await new Promise(r => setTimeout(r, 100));
	}
	sub.unsubscribe();
	return heard;
}

const call = <T>(region: string, action: string, params: unknown) => nodes[region]!.node.broker.call<T, unknown>(action, params);

beforeAll(async () => {
	cluster = await startSecureEdges(REGIONS, [...REGIONS, ROGUE_SLOT]);
	for (const region of REGIONS)
		nodes[region] = await startKvNode({
			region,
			natsUrl: server(region).url,
			bucket: `secure-${run}`,
			hubReplicas: HUB_REPLICAS,
			namespacePrefix: `ss-${run}-`,
			blindIndexKey,
			services: ["sv-region"],
			schemas: [notesService],
			env: productionEnv(region)
		});
}, 60_000);

afterAll(async () => {
	try {
		await Promise.allSettled(clients.map(nc => nc.close()));
		await Promise.allSettled(Object.values(nodes).map(n => n.stop()));
		await Promise.allSettled(rogues.map(r => r.stop()));
	} finally {
		await cluster?.stop();
	}
});

describe("two regions on the shipped NATS configs (TLS, users, mutual-TLS routes and leaf nodes)", () => {
	it("serves each user in its home region whichever region the call enters, every connection TLS and logged in as service", async () => {
		const users: Record<string, string> = {};
		for (const home of REGIONS) {
			// Registered at the other region: the directory write crosses its leaf node into the hub's JetStream.
			const entry = REGIONS.find(r => r !== home)!;
			const res = await whileDirectoryUnavailable(() =>
				call<{ userId: string; region: string }>(entry, "sv-region.register", {
					identities: [{ kind: "username", value: `${home}-${run}` }],
					country: COUNTRY[home]
				})
			);
			expect(res.region).toBe(home);
			users[home] = res.userId;
		}
		for (const from of REGIONS)
			for (const home of REGIONS) {
				const userId = users[home]!;
				await expect
					.poll(() => call(from, "sv-region.lookup", { userId }).catch(err => err), { timeout: 10_000, interval: 100 })
					.toMatchObject({ region: home });
				expect(await call(from, "notes.add", { userId, text: `via ${from}` })).toMatchObject({ region: home });
			}
		for (const from of REGIONS)
			for (const home of REGIONS) {
				const notes = await call<{ text: string; region: string }[]>(from, "notes.list", { userId: users[home] });
				expect(notes.map(n => n.region)).toEqual([home, home]);
				expect(notes.map(n => n.text).sort()).toEqual(REGIONS.map(r => `via ${r}`).sort());
			}
		for (const region of REGIONS) {
			const { connections } = await server(region).monitor<{ connections: { tls_version?: string; authorized_user?: string }[] }>("/connz?auth=true");
			expect(connections.length).toBeGreaterThan(0);
			for (const c of connections) expect(c).toMatchObject({ tls_version: expect.stringMatching(/^1\.[23]$/), authorized_user: "service" });
			// Each edge is a leaf of its own region's hub server (its certificate mapped to the region's leaf user).
			expect((await hub(region).monitor<{ leafnodes: number }>("/leafz")).leafnodes).toBe(1);
		}
		const { routes } = await hub(PRIMARY).monitor<{ routes?: { remote_id: string }[] }>("/routez");
		const { server_id: otherHub } = await hub(OTHER).monitor<{ server_id: string }>("/varz");
		expect((routes ?? []).map(r => r.remote_id)).toContain(otherHub);
	});
});

/** True once `s` has logged a refused `kind` (route, leafnode) connection of each `way`. */
function refused(s: ShippedServer, kind: "route" | "leafnode", ways: ("inbound" | "outbound")[]): boolean {
	const log = s.log();
	// Go's TLS says "client certificate" when the server refuses the side that dialed it.
	const pattern = {
		inbound: new RegExp(`TLS ${kind} handshake error: .*client certificate.*signed by unknown authority`),
		outbound: new RegExp(`TLS ${kind} handshake error: x509: certificate signed by unknown authority`)
	};
	return ways.every(way => pattern[way].test(log));
}

describe("a server without a certificate of the edgehome CA", () => {
	it("cannot join the hub as a route, either way round, and nothing published on it reaches the regions", async () => {
		// Where eu-central's hub server's name points, with its shipped config.
		const impostor = await rogue("hub", ROGUE_SLOT, "foreign");
		onTestFinished(() => impostor.server.stop());
		// Each hub server dials it (its certificate is refused), and it dials each of them (refused too).
		await within(() => REGIONS.every(r => refused(hub(r), "route", ["inbound", "outbound"])), 10_000);

		const heard = await crossTalk(await client(server(PRIMARY)), `probe.route.${run}`, {
			[OTHER]: await client(server(OTHER)),
			impostor: await client(impostor.server, impostor.caFile)
		});
		expect([...heard]).toEqual([OTHER]);
		const { server_id: impostorId } = await impostor.server.monitor<{ server_id: string }>("/varz");
		for (const region of REGIONS) {
			const { routes } = await hub(region).monitor<{ routes?: { remote_id: string }[] }>("/routez");
			expect((routes ?? []).map(r => r.remote_id)).not.toContain(impostorId);
		}
	});

	it("cannot join the hub as a region's edge (a leaf node), and nothing published on it reaches the regions", async () => {
		const intruder = await rogue("edge", OTHER, "foreign");
		onTestFinished(() => intruder.server.stop());
		await within(() => refused(hub(OTHER), "leafnode", ["inbound"]), 10_000);

		const heard = await crossTalk(await client(server(PRIMARY)), `probe.leaf.${run}`, {
			[OTHER]: await client(server(OTHER)),
			intruder: await client(intruder.server, intruder.caFile)
		});
		expect([...heard]).toEqual([OTHER]);
		expect((await hub(OTHER).monitor<{ leafnodes: number }>("/leafz")).leafnodes).toBe(1);
	});
});

describe("a server with a certificate of the edgehome CA for another name", () => {
	it("is refused by the hub servers that dial it at an address its certificate does not name", async () => {
		// Another region's certificate (a copied one, say) where eu-central's hub server's name points.
		const copy = await rogue("hub", ROGUE_SLOT, { naming: `nats.${OTHER}.edgehome.internal` });
		onTestFinished(() => copy.server.stop());
		const misnamed = /TLS route handshake error: x509: (cannot validate certificate for 127\.0\.0\.1|certificate is valid for)/;
		await within(() => REGIONS.every(r => misnamed.test(hub(r).log())), 10_000);
		// Not refused: it dialing in as a route. A route checks only the CA of the side that dials (deploy/README.md).
	});

	it("is refused as a leaf node unless it names a region's edge server", async () => {
		const unnamed = await rogue("edge", OTHER, { naming: `hub.${OTHER}.edgehome.internal` });
		onTestFinished(() => unnamed.server.stop());
		await within(() => /Leafnode connection closed: Authentication Failure/.test(hub(OTHER).log()), 10_000);
		// Only the region's own edge is a leaf of its hub server.
		expect((await hub(OTHER).monitor<{ leafnodes: number }>("/leafz")).leafnodes).toBe(1);
	});
});

describe("a client of one region at another region's server", () => {
	it("is refused with its own region's password, as service or as ops", async () => {
		const home = server(PRIMARY);
		for (const [user, password] of [
			["service", home.passwords.NATS_SERVICE_PASSWORD],
			["ops", home.passwords.NATS_OPS_PASSWORD]
		] as const) {
			const credentials = natsCredentials({ ...productionEnv(PRIMARY), EDGEHOME_NATS_USER: user, EDGEHOME_NATS_PASSWORD: password });
			const err = await failureOf(checkNatsLogin(server(OTHER).url, credentials));
			expect(String(err), user).toMatch(/NATS refused this node's login: .*authorization violation/i);
		}
		// The other region's own login is admitted: what is refused is the password.
		await expect(checkNatsLogin(server(OTHER).url, natsCredentials(productionEnv(OTHER)))).resolves.toBeUndefined();
	});

	it("is refused in plain text, even with the right password", async () => {
		for (const region of REGIONS) {
			const heard = await plainTextLogin(server(region).url, "service", server(region).passwords.NATS_SERVICE_PASSWORD);
			expect(heard).toMatch(/"tls_required":true/);
			// The server reads the plain CONNECT as a failed TLS handshake and hangs up: no PONG.
			expect(heard).not.toMatch(/PONG|\+OK/);
		}
	});
});
