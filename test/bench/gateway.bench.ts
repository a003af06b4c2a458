import { randomBytes } from "node:crypto";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import autocannon from "autocannon";
import { startEdgeTopology } from "../harness/edge-topology.ts";
import { freePort } from "../harness/free-port.ts";
import { http } from "../harness/gateways.ts";
import { startOtlpReceiver } from "../harness/otlp-receiver.ts";
import { runId } from "../harness/real-servers.ts";
import { round, startServer, treeBusySeconds, withCleanups } from "./measure.ts";

/**
 * `npm run bench:gateway`: HTTP load from autocannon against (a) stock moleculer-web calling
 * sv-user.get on another node over NATS, no auth; (b) our GET /api/v1/me for a user of this
 * region (token verified, RBAC-checked, home-routed); (c) the same for a user homed in the other
 * region of a 2-region supercluster; (d) (b) on a second entry node whose gateway caches users'
 * reads (mixins/cache.mixin.ts; (b) and (c) run with it off); (e) (b) on a third entry node that
 * traces, sampling TRACE_RATIO of requests and exporting them over OTLP/HTTP to a collector on
 * loopback (the users' node does not trace, so that (b) is wholly untraced). (a), (b), (d) and (e)
 * run in alternating windows, in (a)(b)(d)(e) then (e)(d)(b)(a) order. Ends with one JSON line.
 */

const SERVER = join(import.meta.dirname, "gateway-server.ts");
const CONNECTIONS = 50;
const WINDOW_S = 3;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 8);
const TRACE_RATIO = 0.01;

interface Load {
	reqPerSec: number;
	p50Ms: number;
	p99Ms: number;
	failures: number;
	/** CPU of every process of the case (servers, NATS, the load generator) per request, in µs. */
	cpuUsPerReq?: number;
}

async function load(url: string, headers: Record<string, string>, seconds: number): Promise<Load> {
	const busy = treeBusySeconds();
	const r = await autocannon({ url, connections: CONNECTIONS, duration: seconds, headers });
	const spent = busy === undefined ? undefined : treeBusySeconds()! - busy;
	const cpuUsPerReq = spent === undefined || !r.requests.total ? undefined : (spent * 1e6) / r.requests.total;
	return { reqPerSec: r.requests.average, p50Ms: r.latency.p50, p99Ms: r.latency.p99, failures: r.non2xx + r.errors + r.timeouts, cpuUsPerReq };
}

function mean(runs: Load[]): Load {
	const avg = (pick: (l: Load) => number) => runs.reduce((s, l) => s + pick(l), 0) / runs.length;
	const cpu = runs.every(l => l.cpuUsPerReq !== undefined) ? avg(l => l.cpuUsPerReq!) : undefined;
	return {
		reqPerSec: avg(l => l.reqPerSec),
		p50Ms: avg(l => l.p50Ms),
		p99Ms: avg(l => l.p99Ms),
		failures: runs.reduce((s, l) => s + l.failures, 0),
		cpuUsPerReq: cpu
	};
}

async function main(): Promise<void> {
	const figures = await withCleanups(async cleanups => {
		const cluster = await startEdgeTopology(["cn-east", "eu-central"]);
		cleanups.push(cluster.stop);
		const run = runId();
		const env = {
			...process.env,
			EDGEHOME_BLIND_INDEX_KEY: randomBytes(32).toString("base64"),
			EDGEHOME_PII_KEYS: `b1:${randomBytes(32).toString("base64")}`,
			// One load generator is one IP: the per-IP and per-user limits would measure themselves.
			EDGEHOME_RATE_IP_PER_MIN: "100000000",
			EDGEHOME_RATE_USER_PER_MIN: "100000000",
			EDGEHOME_LOG_LEVEL: "warn"
		};
		const common = (region: string) => [
			region,
			cluster.urls[region]!,
			`bench-${run}-directory`,
			`bench${run}-`,
			String(cluster.placement(region).originReplicas)
		];
		const [appPort, barePort, cachedPort, spareBarePort, tracedPort, tracedBarePort] = [
			await freePort(),
			await freePort(),
			await freePort(),
			await freePort(),
			await freePort(),
			await freePort()
		];
		const collector = await startOtlpReceiver();
		cleanups.push(collector.stop);
		await startServer(cleanups, SERVER, ["users", ...common("cn-east")], env);
		await startServer(cleanups, SERVER, ["region", ...common("eu-central")], env);
		// (b) and (c) without the cache mixin, so they measure the routed call; (d) on a second entry node with it.
		// The two share a database, as a region's nodes do: a token one signed verifies on the other.
		const shared = join(tmpdir(), `bench-gateways-${run}.db`);
		cleanups.push(() => rm(shared, { force: true }));
		const entry = { ...env, BENCH_GATEWAY_SQL: `sqlite:${shared}` };
		await startServer(cleanups, SERVER, ["gateway", ...common("cn-east"), String(appPort), String(barePort)], { ...entry, EDGEHOME_CACHE_TTL_MS: "0" });
		await startServer(cleanups, SERVER, ["gateway", ...common("cn-east"), String(cachedPort), String(spareBarePort)], entry);
		await startServer(cleanups, SERVER, ["gateway", ...common("cn-east"), String(tracedPort), String(tracedBarePort)], {
			...entry,
			EDGEHOME_CACHE_TTL_MS: "0",
			EDGEHOME_OTLP_URL: collector.url,
			EDGEHOME_TRACE_SAMPLE_RATIO: String(TRACE_RATIO)
		});
		const app = `http://127.0.0.1:${appPort}`;
		const cachedApp = `http://127.0.0.1:${cachedPort}`;
		const tracedApp = `http://127.0.0.1:${tracedPort}`;

		const signUp = async (username: string, country: string) => {
			const password = `bench pass ${randomBytes(4).toString("hex")}`;
			const res = await http(app, "POST", "/api/v1/auth/register", { body: { username, password, country } });
			if (res.status !== 201) throw new Error(`register ${username}: ${res.status} ${res.text}`);
			// The other region's services may still be being discovered by the gateway: retry briefly.
			for (let i = 0; ; i++) {
				const login = await http(app, "POST", "/api/v1/auth/login", { body: { login: username, password } });
				if (login.status === 200) return { id: res.body.id as string, token: login.body.accessToken as string };
				if (i > 50) throw new Error(`login ${username}: ${login.status} ${login.text}`);
				await new Promise(r => setTimeout(r, 200));
			}
		};
		const local = await signUp("bench-local", "CN");
		const remote = await signUp("bench-remote", "DE");

		const bare = () => load(`http://127.0.0.1:${barePort}/profile/${local.id}`, {}, WINDOW_S);
		const ours = () => load(`${app}/api/v1/me`, { authorization: `Bearer ${local.token}` }, WINDOW_S);
		const cached = () => load(`${cachedApp}/api/v1/me`, { authorization: `Bearer ${local.token}` }, WINDOW_S);
		const traced = () => load(`${tracedApp}/api/v1/me`, { authorization: `Bearer ${local.token}` }, WINDOW_S);
		await bare();
		await ours();
		await cached();
		await traced();
		const bareRuns: Load[] = [];
		const ourRuns: Load[] = [];
		const cachedRuns: Load[] = [];
		const tracedRuns: Load[] = [];
		// (a) (b) (d) (e), then (e) (d) (b) (a): the machine's drift within a round weighs on each alike.
		const cases: [() => Promise<Load>, Load[]][] = [
			[bare, bareRuns],
			[ours, ourRuns],
			[cached, cachedRuns],
			[traced, tracedRuns]
		];
		for (let i = 0; i < ROUNDS; i++) for (const [run, runs] of i % 2 === 0 ? cases : [...cases].reverse()) runs.push(await run());
		await load(`${app}/api/v1/me`, { authorization: `Bearer ${remote.token}` }, 2);
		const away = await load(`${app}/api/v1/me`, { authorization: `Bearer ${remote.token}` }, WINDOW_S * 2);
		// The sampled traces reached the collector: (e) measured an exporting tracer, not a silent one.
		const exported = { spans: collector.spans.length, traces: new Set(collector.spans.map(span => span.traceId)).size };
		if (!exported.traces) throw new Error("(e): no trace reached the collector");
		return { bare: mean(bareRuns), ours: mean(ourRuns), away, cached: mean(cachedRuns), traced: mean(tracedRuns), exported };
	});

	const ratio = figures.ours.reqPerSec / figures.bare.reqPerSec;
	const cachedRatio = figures.cached.reqPerSec / figures.bare.reqPerSec;
	const tracedRatio = figures.traced.reqPerSec / figures.ours.reqPerSec;
	const row = (name: string, l: Load) =>
		`${name.padEnd(58)} ${Math.round(l.reqPerSec).toLocaleString("en-US").padStart(8)} req/s  p50 ${l.p50Ms.toFixed(1)} ms  p99 ${l.p99Ms.toFixed(1)} ms  failures ${l.failures}`;
	console.log(`gateway bench: autocannon, ${CONNECTIONS} connections, ${ROUNDS} rounds of alternating ${WINDOW_S} s windows for (a)/(b)\n`);
	console.log(row("(a) stock moleculer-web -> sv-user.get over NATS, no auth", figures.bare));
	console.log(row("(b) GET /api/v1/me: token, RBAC, home-routed, this region", figures.ours));
	console.log(row("(c) GET /api/v1/me: user homed in the other region", figures.away));
	console.log(row("(d) GET /api/v1/me through the cache mixin, this region", figures.cached));
	console.log(row(`(e) (b) traced, ${TRACE_RATIO * 100} % sampled, exported over OTLP`, figures.traced));
	// What (a) costs the machine per request over what (b) costs: the throughput ratio the cores would allow, free of window-to-window drift.
	const cpuRatio = figures.bare.cpuUsPerReq && figures.ours.cpuUsPerReq ? figures.bare.cpuUsPerReq / figures.ours.cpuUsPerReq : undefined;
	console.log(`\n(b)/(a) throughput: x${ratio.toFixed(3)} (goal >= 0.9)`);
	console.log(`(d)/(a) throughput: x${cachedRatio.toFixed(3)} (goal >= 1.5)`);
	console.log(
		`(e)/(b) throughput: x${tracedRatio.toFixed(3)} (goal >= 0.9); ${figures.exported.traces} sampled traces (${figures.exported.spans} spans) reached the collector`
	);
	const tracedCpuRatio = figures.ours.cpuUsPerReq && figures.traced.cpuUsPerReq ? figures.ours.cpuUsPerReq / figures.traced.cpuUsPerReq : undefined;
	if (cpuRatio !== undefined)
		console.log(
			`    CPU per request, all of the bench's processes: (a) ${figures.bare.cpuUsPerReq!.toFixed(1)} µs, (b) ${figures.ours.cpuUsPerReq!.toFixed(1)} µs: (a)/(b) x${cpuRatio.toFixed(3)}`
		);
	if (tracedCpuRatio !== undefined) console.log(`    CPU per request: (e) ${figures.traced.cpuUsPerReq!.toFixed(1)} µs: (b)/(e) x${tracedCpuRatio.toFixed(3)}`);
	console.log("");
	const f = (l: Load) => ({
		reqPerSec: Math.round(l.reqPerSec),
		p50Ms: round(l.p50Ms, 2),
		p99Ms: round(l.p99Ms, 2),
		failures: l.failures,
		...(l.cpuUsPerReq === undefined ? {} : { cpuUsPerReq: round(l.cpuUsPerReq, 1) })
	});
	console.log(
		JSON.stringify({
			bareMoleculerWeb: f(figures.bare),
			me: f(figures.ours),
			meOtherRegion: f(figures.away),
			meCached: f(figures.cached),
			meTraced: { ...f(figures.traced), sampleRatio: TRACE_RATIO, ...figures.exported },
			ratios: {
				meOverBare: round(ratio, 4),
				meCachedOverBare: round(cachedRatio, 4),
				meTracedOverMe: round(tracedRatio, 4),
				...(cpuRatio === undefined ? {} : { cpuBareOverMe: round(cpuRatio, 4) }),
				...(tracedCpuRatio === undefined ? {} : { cpuMeOverMeTraced: round(tracedCpuRatio, 4) })
			}
		})
	);
}

main().catch(err => {
	console.error(err);
	process.exitCode = 1;
});
