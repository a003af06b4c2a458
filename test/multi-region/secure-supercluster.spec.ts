import { randomBytes } from "node:crypto";
import { copyFileSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { NatsConnection } from "nats";
import { connect } from "nats";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { checkNatsLogin, natsCredentials } from "../../regions/runtime/bus-credentials.ts";
import { SERVICES } from "../../services/index.ts";
import { freePort } from "../harness/free-port.ts";
import type { KvNode } from "../harness/kv-node.ts";
import { startKvNode } from "../harness/kv-node.ts";
import { notesService } from "../harness/notes.service.ts";
import { runId } from "../harness/real-servers.ts";
import type { SecureSupercluster, ShippedServer } from "../harness/secure-nats.ts";
import { certificateNaming, makeCertificates, plainTextLogin, startSecureSupercluster, startShippedServer } from "../harness/secure-nats.ts";
import { failureOf, within } from "../harness/waiting.ts";
import { restrictedOf } from "../unit/deploy/restricted-actions.ts";

/**
 * The supercluster as shipped: deploy/nats/<region>.conf with auth.conf and make-certs.sh's
 * certificates, on loopback ports. Two regions run; the third region's gateway address is where a
 * rogue server turns up, with the same config and certificates of a CA of its own.
 */
const PRIMARY = "cn-east";
const OTHER = "ap-south";
const REGIONS = [PRIMARY, OTHER];
const ROGUE_SLOT = "eu-central";
/** A country each region serves, so that registration homes a user in each. */
const COUNTRY: Record<string, string> = { "cn-east": "JP", "ap-south": "SG" };
const run = runId();
const blindIndexKey = randomBytes(32);
const NODE_SERVICES = [SERVICES["sv-region"]!, notesService];
/** A key of every capability the nodes' services restrict something to, the same in both regions. */
const capabilityKeys = [...new Set(NODE_SERVICES.flatMap(schema => restrictedOf(schema).map(r => r.capability)))]
	.map(capability => `${capability}:${randomBytes(32).toString("base64")}`)
	.join(",");
let cluster: SecureSupercluster;
const nodes: Record<string, KvNode> = {};
const rogues: ShippedServer[] = [];
const clients: NatsConnection[] = [];

const server = (region: string) => cluster.servers[region]!;

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
 * A server of the shipped config that trusts the edgehome CA, whose certificate is public, so that it
 * accepts the supercluster's servers and only their checks can keep it out. Its own certificate is
 * from another CA (make-certs.sh run elsewhere: `foreign`), or from the edgehome CA but naming only
 * `naming`. Its clients trust `caFile`.
 */
async function rogue(region: string, certificate: "foreign" | { naming: string }, gatewayPort: number, routeTo?: number) {
	const root = join(cluster.root, `rogue-${rogues.length}`);
	const pki = join(root, "pki");
	mkdirSync(join(root, "js"), { recursive: true });
	if (certificate === "foreign") makeCertificates(pki, [region]);
	else certificateNaming(join(cluster.root, "pki"), join(pki, region), certificate.naming);
	copyFileSync(join(cluster.root, "pki", "ca.crt"), join(pki, region, "ca.crt"));
	const ports = { client: await freePort(), http: await freePort(), cluster: await freePort(), gateway: gatewayPort };
	const s = await startShippedServer({
		region,
		root,
		certs: pki,
		ports,
		gateways: cluster.gateways,
		storeDir: join(root, "js"),
		routeTo,
		serverName: `nats-${region}-rogue`
	});
	rogues.push(s);
	return { server: s, caFile: join(pki, "ca.crt") };
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
	cluster = await startSecureSupercluster(REGIONS, [...REGIONS, ROGUE_SLOT]);
	// The primary first: the other region's directory mirrors its bucket.
	for (const region of REGIONS)
		nodes[region] = await startKvNode({
			region,
			natsUrl: server(region).url,
			bucket: `secure-${run}`,
			primary: PRIMARY,
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

describe("two regions on the shipped NATS configs (TLS, users, mutual-TLS gateways)", () => {
	it("serves each user in its home region whichever region the call enters, every connection TLS and logged in as service", async () => {
		const users: Record<string, string> = {};
		for (const home of REGIONS) {
			// Registered at the other region: the directory write crosses the gateway to the primary's JetStream.
			const entry = REGIONS.find(r => r !== home)!;
			const res = await call<{ userId: string; region: string }>(entry, "sv-region.register", {
				identities: [{ kind: "username", value: `${home}-${run}` }],
				country: COUNTRY[home]
			});
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
			const { outbound_gateways: out } = await server(region).monitor<{ outbound_gateways: Record<string, { connection: { tls_version?: string } }> }>(
				"/gatewayz"
			);
			const peer = REGIONS.find(r => r !== region)!;
			expect(out[peer]?.connection.tls_version).toMatch(/^1\.[23]$/);
		}
	});
});

type Gatewayz = { outbound_gateways?: Record<string, unknown>; inbound_gateways?: Record<string, unknown> };

/** True once `s` has logged a refused `kind` (gateway, route) connection of each `way`. */
function refused(s: ShippedServer, kind: "gateway" | "route", ways: ("inbound" | "outbound")[]): boolean {
	const log = s.log();
	// Go's TLS says "client certificate" when the server refuses the side that dialed it.
	const pattern = {
		inbound: new RegExp(`TLS ${kind} handshake error: .*client certificate.*signed by unknown authority`),
		outbound: new RegExp(`TLS ${kind} handshake error: x509: certificate signed by unknown authority`)
	};
	return ways.every(way => pattern[way].test(log));
}

describe("a server without a certificate of the edgehome CA", () => {
	it("cannot join as a region's gateway, either way round, and nothing published on it reaches the supercluster", async () => {
		// Where eu-central's name points, with eu-central's shipped config.
		const impostor = await rogue(ROGUE_SLOT, "foreign", cluster.gateways[ROGUE_SLOT]!);
		onTestFinished(() => impostor.server.stop());
		// Each region dials it (its certificate is refused), and it dials each region (refused too).
		await within(() => REGIONS.every(r => refused(server(r), "gateway", ["inbound", "outbound"])), 10_000);

		const [atPrimary, atOther] = await Promise.all([
			crossTalk(await client(server(PRIMARY)), `probe.gw.${run}.${PRIMARY}`, {
				[OTHER]: await client(server(OTHER)),
				impostor: await client(impostor.server, impostor.caFile)
			}),
			crossTalk(await client(server(OTHER)), `probe.gw.${run}.${OTHER}`, {
				[PRIMARY]: await client(server(PRIMARY)),
				impostor: await client(impostor.server, impostor.caFile)
			})
		]);
		expect([...atPrimary]).toEqual([OTHER]);
		expect([...atOther]).toEqual([PRIMARY]);

		for (const region of REGIONS) {
			const gw = await server(region).monitor<Gatewayz>("/gatewayz");
			expect(Object.keys(gw.outbound_gateways ?? {})).toEqual(REGIONS.filter(r => r !== region));
			expect(Object.keys(gw.inbound_gateways ?? {})).toEqual(REGIONS.filter(r => r !== region));
		}
		const seen = await impostor.server.monitor<Gatewayz>("/gatewayz");
		expect([Object.keys(seen.outbound_gateways ?? {}), Object.keys(seen.inbound_gateways ?? {})]).toEqual([[], []]);
	});

	it("cannot join a region's cluster as a route, and nothing published on it reaches that region", async () => {
		const intruder = await rogue(PRIMARY, "foreign", await freePort(), server(PRIMARY).ports.cluster);
		onTestFinished(() => intruder.server.stop());
		await within(() => refused(server(PRIMARY), "route", ["inbound"]), 10_000);

		const heard = await crossTalk(await client(server(PRIMARY)), `probe.route.${run}`, {
			[OTHER]: await client(server(OTHER)),
			intruder: await client(intruder.server, intruder.caFile)
		});
		expect([...heard]).toEqual([OTHER]);

		const { server_id: intruderId } = await intruder.server.monitor<{ server_id: string }>("/varz");
		const { routes } = await server(PRIMARY).monitor<{ routes?: { remote_id: string }[] }>("/routez");
		expect((routes ?? []).map(r => r.remote_id)).not.toContain(intruderId);
	});
});

describe("a server with a certificate of the edgehome CA for another name", () => {
	it("is refused by the regions that dial it at an address its certificate does not name", async () => {
		// Another region's certificate (a copied one, say) where eu-central's name points.
		const copy = await rogue(ROGUE_SLOT, { naming: `nats.${OTHER}.edgehome.internal` }, cluster.gateways[ROGUE_SLOT]!);
		onTestFinished(() => copy.server.stop());
		const misnamed = /TLS gateway handshake error: x509: (cannot validate certificate for 127\.0\.0\.1|certificate is valid for)/;
		await within(() => REGIONS.every(r => misnamed.test(server(r).log())), 10_000);
		for (const region of REGIONS) expect(Object.keys((await server(region).monitor<Gatewayz>("/gatewayz")).outbound_gateways ?? {})).not.toContain(ROGUE_SLOT);
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
