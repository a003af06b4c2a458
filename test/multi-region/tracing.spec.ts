import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deleteChannelStreams } from "../harness/channels-streams.ts";
import { http } from "../harness/gateways.ts";
import type { LauncherRun } from "../harness/launcher-regions.ts";
import { cleanupLauncherStores, launcherEnvOf } from "../harness/launcher-regions.ts";
import type { OtlpReceiver, ReceivedSpan } from "../harness/otlp-receiver.ts";
import { startOtlpReceiver } from "../harness/otlp-receiver.ts";
import { deleteKvBucket, REAL, runId } from "../harness/real-servers.ts";
import type { RegionPorts, RegionProcess } from "../harness/region-process.ts";
import { LAUNCHER_READY_MS, regionFilesWithFreePorts, spawnRegionProcess, untilReady } from "../harness/region-process.ts";
import { within } from "../harness/waiting.ts";

/**
 * Each region in a process of its own, as deployed (`npm run region`, one OTel SDK and resource per
 * process), on the real NATS (one namespace per region; the directory's bucket on that server,
 * no mirror), MariaDB and Redis; used through cn-east's gateways.
 */
const REGIONS = ["cn-east", "eu-central"];
const SERVICES = ["sv-region", "sv-user", "auth-jwt", "auth-rbac", "sv-log", "api-www", "api-app"];

let receiver: OtlpReceiver;
const dir = mkdtempSync(join(tmpdir(), "edgehome-tracing-"));
const launchers: LauncherRun = {
	run: runId(),
	regionsDir: join(dir, "regions"),
	blindIndexKey: randomBytes(32).toString("base64"),
	opsToken: randomBytes(24).toString("hex")
};
const nodes: RegionProcess[] = [];
let ports: Record<string, RegionPorts> = {};
const via = (gateway: "www" | "app") => (method: string, path: string, opts?: Parameters<typeof http>[3]) =>
	http(`http://127.0.0.1:${ports["cn-east"]![gateway]}`, method, path, opts);
const cnWww = via("www");
const cnApp = via("app");

const USER = { username: "traced-klara", password: "zugspitze 2962", email: "klara.traced@example.de", phone: "+4989123456", country: "DE" };

/** Whether a region's node reaches `peer` through its link (its ops metrics, edgehome_region_reachable). */
async function reaches(region: string, peer: string): Promise<boolean> {
	const res = await fetch(`http://127.0.0.1:${ports[region]!.metrics}/metrics`, { headers: { authorization: `Bearer ${launchers.opsToken}` } }).catch(
		() => undefined
	);
	const text = res?.ok ? await res.text() : "";
	return new RegExp(`^edgehome_region_reachable\\{[^}]*peer="${peer}"[^}]*\\} 1$`, "m").test(text);
}

beforeAll(async () => {
	receiver = await startOtlpReceiver();
	ports = await regionFilesWithFreePorts(launchers.regionsDir);
	const env = {
		EDGEHOME_NATS_URL: REAL.nats,
		EDGEHOME_OTLP_URL: receiver.url,
		EDGEHOME_TRACE_SAMPLE_RATIO: "1",
		EDGEHOME_TRACE_EXPORT_DELAY_MS: "50",
		// sv-log writes each audit record in a batch of its own: a batch holding the login's record and the
		// session end's would run its INSERT in the trace of whichever came first.
		EDGEHOME_LOG_FLUSH_MS: "1"
	};
	for (const region of REGIONS)
		nodes.push(spawnRegionProcess({ region, services: SERVICES, env: launcherEnvOf(launchers, region, env), logFile: join(dir, `${region}.log`) }));
	const ready = await Promise.all(nodes.map(node => untilReady(node, ports[node.region]!.metrics, launchers.opsToken, LAUNCHER_READY_MS)));
	expect(ready.map(r => r.global)).toEqual(["available", "available"]);
	await within(async () => (await reaches("cn-east", "eu-central")) && (await reaches("eu-central", "cn-east")), 10_000);
}, LAUNCHER_READY_MS + 30_000);

afterAll(async () => {
	await Promise.allSettled(nodes.map(n => n.kill()));
	await receiver?.stop();
	await deleteChannelStreams(`t${launchers.run}`).catch(() => undefined);
	await deleteKvBucket(`t${launchers.run}-edgehome-directory`);
	await cleanupLauncherStores(launchers.run, REGIONS);
	rmSync(dir, { recursive: true, force: true });
});

const sidOf = (token: string) => JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString()).sid as string;

/** The one span of `spans` that `pick` finds, failing with the names present when there is none or more. */
function one(spans: ReceivedSpan[], what: string, pick: (s: ReceivedSpan) => boolean): ReceivedSpan {
	const found = spans.filter(pick);
	if (found.length !== 1)
		throw new Error(`${found.length} spans for ${what}; the trace has: ${spans.map(s => `${s.name} (${s.resource["cloud.region"]})`).join(", ")}`);
	return found[0]!;
}

describe("tracing: one trace from a gateway request to the consumer of its message, across regions", () => {
	it("ends a session of a user homed in eu-central through cn-east's gateway, in one trace with its parents, both regions' resources and no personal data", async () => {
		const registered = await cnWww("POST", "/api/v1/auth/register", { body: USER });
		expect(registered.status, registered.text).toBe(201);
		expect(registered.body.region).toBe("eu-central");
		const login = (gateway: typeof cnWww) => gateway("POST", "/api/v1/auth/login", { body: { login: USER.email, password: USER.password } });
		const mine = (await login(cnWww)).body;
		// The same user's session on another client: the one the request ends.
		const other = (await login(cnApp)).body;
		expect(mine.accessToken).toEqual(expect.any(String));
		// cn-east verifies eu-central's tokens once it has heard eu-central's revocation feed.
		await within(async () => (await cnWww("GET", "/api/v1/me", { token: mine.accessToken })).status === 200, 10_000);

		// The client's own trace: its id becomes the request's, its span the gateway span's parent.
		const traceId = randomBytes(16).toString("hex");
		const callerSpan = randomBytes(8).toString("hex");
		const ended = await cnWww("DELETE", `/api/v1/me/sessions/${sidOf(other.accessToken)}`, {
			token: mine.accessToken,
			headers: { traceparent: `00-${traceId}-${callerSpan}-01`, "x-forwarded-for": "203.0.113.7" }
		});
		expect(ended.status, ended.text).toBe(204);

		await within(() => receiver.trace(traceId).some(s => s.name === "process audit.record"), 10_000);
		// The request's spans still in flight (the gateway's own, closed with the response) arrive with the next export.
		await within(() => receiver.trace(traceId).some(s => s.kind === "SPAN_KIND_SERVER" && s.name.startsWith("DELETE")), 5000);
		const spans = receiver.trace(traceId);
		const region = (s: ReceivedSpan) => s.resource["cloud.region"];

		const gateway = one(spans, "the gateway's HTTP span", s => s.kind === "SPAN_KIND_SERVER" && s.name === "DELETE /api/v1/me/sessions/:sid");
		expect(gateway.parentSpanId).toBe(callerSpan);
		expect(region(gateway)).toBe("cn-east");
		expect(gateway.attributes).toMatchObject({ "http.request.method": "DELETE", "http.route": "/api/v1/me/sessions/:sid", "http.response.status_code": 204 });
		expect(ended.headers.get("traceparent")).toBe(`00-${traceId}-${gateway.spanId}-01`);

		const rest = one(spans, "the gateway's request action", s => s.name === "api-www/rest");
		expect(rest.parentSpanId).toBe(gateway.spanId);
		const routing = one(spans, "the home routing", s => s.name === "route auth-jwt.endSession");
		expect(routing.parentSpanId).toBe(rest.spanId);
		expect(region(routing)).toBe("cn-east");
		expect(routing.attributes).toMatchObject({ "edgehome.user.home_region": "eu-central", "edgehome.route.forwarded": true });
		const hop = one(spans, "the link hop", s => s.kind === "SPAN_KIND_CLIENT" && s.name === "auth-jwt/endSession");
		expect(hop.parentSpanId).toBe(routing.spanId);
		expect(region(hop)).toBe("cn-east");
		expect(hop.attributes).toMatchObject({ "rpc.system": "moleculer", "edgehome.link.region": "eu-central", "edgehome.route.hops": 1 });

		const handler = one(spans, "the home handler", s => s.kind === "SPAN_KIND_SERVER" && s.name === "auth-jwt/endSession");
		expect(handler.parentSpanId).toBe(hop.spanId);
		expect(region(handler)).toBe("eu-central");
		expect(handler.attributes).toMatchObject({
			"rpc.service": "auth-jwt",
			"rpc.method": "endSession",
			"edgehome.user.home_region": "eu-central",
			"edgehome.route.origin_region": "cn-east",
			"edgehome.route.hops": 1,
			"edgehome.user.epoch": expect.any(Number)
		});

		const queries = spans.filter(s => s.attributes["db.system.name"] === "mysql" && s.parentSpanId === handler.spanId);
		expect(queries.length).toBeGreaterThan(0);
		expect(queries.every(q => region(q) === "eu-central" && q.kind === "SPAN_KIND_CLIENT")).toBe(true);
		expect(queries.map(q => q.attributes["db.operation.name"])).toContain("UPDATE");

		const publish = one(spans, "the audit record sent", s => s.kind === "SPAN_KIND_PRODUCER" && s.name === "send audit.record");
		expect(publish.parentSpanId).toBe(handler.spanId);
		expect(region(publish)).toBe("eu-central");
		// Through the region's JetStream, as deployed.
		expect(publish.attributes["messaging.system"]).toBe("nats");
		const consume = one(spans, "the audit record handled", s => s.kind === "SPAN_KIND_CONSUMER" && s.name === "process audit.record");
		expect(consume.parentSpanId).toBe(publish.spanId);
		expect(region(consume)).toBe("eu-central");
		expect(consume.attributes).toMatchObject({ "messaging.destination.name": "audit.record", "messaging.consumer.group.name": expect.any(String) });
		// What the consumer does is part of it too: sv-log's insert of the record.
		expect(spans.some(s => s.parentSpanId === consume.spanId && s.attributes["db.operation.name"] === "INSERT")).toBe(true);

		// Both regions' processes, each with its own resource; each span also names its region and node.
		expect(new Set(spans.map(region))).toEqual(new Set(["cn-east", "eu-central"]));
		for (const s of spans) expect(s.attributes).toMatchObject({ "edgehome.region": region(s), "edgehome.node": expect.stringMatching(`^${region(s)}-`) });
		const instances = (r: string) => new Set(spans.filter(s => region(s) === r).map(s => s.resource["service.instance.id"]));
		expect([...instances("cn-east")]).toHaveLength(1);
		expect([...instances("eu-central")]).toHaveLength(1);
		expect(instances("cn-east")).not.toEqual(instances("eu-central"));
		// Every span of one trace, every parent in the trace (or the caller's).
		const ids = new Set(spans.map(s => s.spanId));
		expect(spans.filter(s => !ids.has(s.parentSpanId)).map(s => s.spanId)).toEqual([gateway.spanId]);
	});

	it("puts no e-mail, phone, username, IP, password or token in any exported attribute or name", async () => {
		await within(() => receiver.spans.length > 0, 5000);
		const tokens = receiver.spans.length;
		const exported = JSON.stringify(receiver.spans.map(s => ({ name: s.name, attributes: s.attributes, status: s.status, resource: s.resource })));
		for (const secret of [USER.email, "klara.traced", USER.phone, "4989123456", USER.username, USER.password, "203.0.113.7", "127.0.0.1", "eyJ", "Bearer"])
			expect(exported, `${secret} in one of ${tokens} spans`).not.toContain(secret);
	});
});
