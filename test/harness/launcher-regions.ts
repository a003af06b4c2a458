import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { NatsConnection } from "nats";
import { connect } from "nats";
import { expect } from "vitest";
import { userKey } from "../../regions/directory/entries.ts";
import { STREAM_NOT_FOUND } from "../../regions/directory/mirror-watchdog.ts";
import type { EdgeTopology } from "./edge-topology.ts";
import { HUB_DOMAIN } from "./edge-topology.ts";
import type { HttpAnswer } from "./gateways.ts";
import { http } from "./gateways.ts";
import { cleanupRealStores, REAL, runId } from "./real-servers.ts";
import type { RegionPorts, RegionProcess } from "./region-process.ts";
import { LAUNCHER_READY_MS, readyz, regionFilesWithFreePorts, spawnRegionProcess, untilReady } from "./region-process.ts";
import { within } from "./waiting.ts";

/** A country each shipped region serves, so that registration homes a user there. */
export const COUNTRY: Record<string, string> = { "cn-east": "JP", "ap-south": "SG", "eu-central": "DE" };
/** Another country of cn-east: a profile update that changes no identity and moves nobody. */
export const OTHER_CN_EAST_COUNTRY = "KR";
/** What a login needs: the gateway, the user and token services, the directory's service, permissions. */
const SERVICES = ["sv-region", "sv-user", "auth-jwt", "auth-rbac", "api-app"];
/** The launcher's bound on each directory operation (EDGEHOME_DIRECTORY_TIMEOUT_MS default). */
const DIRECTORY_TIMEOUT_MS = 2000;
/** An operation needing global agreement must have failed within this, gateway to directory and back. */
export const GLOBAL_FAILURE_BOUND_MS = DIRECTORY_TIMEOUT_MS + 1500;
/**
 * How long /readyz may keep saying global operations are "available" once the region is alone. The global probe asks
 * whether a write could commit (NatsKvDirectoryStore.checkOrigin): a leader alone is seen within 2 s of its replicas'
 * last answer, an origin out of reach at the probe's 2 s bound, plus up to 1.2 s until the next probe. Measured
 * 2.1–2.9 s (test/multi-region/global-quorum.spec.ts, region-cutoff.spec.ts, region-servers-killed.spec.ts).
 */
export const GLOBAL_NOTICE_BOUND_MS = 5000;
/** A restarted node must be ready (and say what it can do) within this. */
export const READY_BOUND_MS = 10_000;
const PASSWORD = "cut off but serving 7";
const NOT_FOUND_IN_STREAM = 10037;

export interface User {
	username: string;
	id: string;
	home: string;
}

/**
 * One `npm run region` launcher per region of an edge topology, in this (root) namespace on real
 * MariaDB and Redis, used as clients use them: through each region's api-app gateway, and its
 * ops port's /readyz. Keeps every user it registered, with the home it was given.
 */
export class LauncherRegions {
	readonly users: User[] = [];
	private readonly run = runId();
	private readonly dir = mkdtempSync(join(tmpdir(), "edgehome-launchers-"));
	private readonly blindIndexKey = randomBytes(32).toString("base64");
	private readonly opsToken = randomBytes(24).toString("hex");
	private readonly nodes: Record<string, RegionProcess> = {};
	private ports: Record<string, RegionPorts> = {};
	private seq = 0;
	/** The test's own connections to the edge servers, one per region, opened on first use. */
	private readonly edges = new Map<string, Promise<NatsConnection>>();

	private readonly topology: EdgeTopology;
	readonly regions: string[];

	constructor(topology: EdgeTopology, regions: string[]) {
		this.topology = topology;
		this.regions = regions;
	}

	/** The directory bucket's name, as the launchers derive it from their namespace prefix. */
	get bucket(): string {
		return `t${this.run}-edgehome-directory`;
	}

	/**
	 * Starts every region's launcher, waits until each says global operations are available, registers one user homed
	 * in each region through its own gateway, and waits until every gateway serves every one of them at home. Resolves
	 * with a line of the figures.
	 */
	async start(): Promise<string> {
		this.ports = await regionFilesWithFreePorts(join(this.dir, "regions"));
		const ready = await Promise.all(this.regions.map(r => this.startNode(r)));
		await within(async () => (await Promise.all(this.regions.map(r => this.globalIs(r, "available")()))).every(Boolean), 15_000);
		for (const region of this.regions) {
			const res = await this.register(region);
			expect(res.status, res.text).toBe(201);
			expect(res.body.region).toBe(region);
		}
		const served = await this.untilEveryHomeServed(this.regions, 15_000);
		// Logins find new users at the origin at once; a region cut off later serves from its mirror, so let the mirrors catch up first.
		const mirrored = await within(async () => {
			for (const region of this.regions) for (const user of this.users) if ((await this.homeInMirror(region, user.id)) !== user.home) return false;
			return true;
		}, 45_000);
		return `launchers ready in ${ready.map(r => r.readyMs).join("/")} ms, every gateway served every home ${served} ms after registration, every mirror held them ${mirrored} ms later`;
	}

	async stop(): Promise<void> {
		await Promise.allSettled([...this.edges.values()].map(async nc => (await nc).close()));
		await Promise.allSettled(Object.values(this.nodes).map(n => n.kill()));
		await cleanupLauncherStores(this.run, this.regions);
		rmSync(this.dir, { recursive: true, force: true });
	}

	gateway(region: string): string {
		return `http://127.0.0.1:${this.ports[region]!.app}`;
	}

	readiness(region: string) {
		return readyz(this.ports[region]!.metrics, this.opsToken);
	}

	globalIs(region: string, status: "available" | "unavailable"): () => Promise<boolean> {
		return async () => (await this.readiness(region))?.body.global === status;
	}

	/** Starts the region's launcher; resolves with the ms from its spawn to its first /readyz 200, and what `global` said then. */
	async startNode(region: string): Promise<{ readyMs: number; global: string }> {
		const node = spawnRegionProcess({ region, services: SERVICES, env: this.envOf(region), logFile: join(this.dir, `${region}.log`) });
		this.nodes[region] = node;
		const { global } = await untilReady(node, this.ports[region]!.metrics, this.opsToken, LAUNCHER_READY_MS);
		return { readyMs: Date.now() - node.startedAt, global };
	}

	/**
	 * SIGKILLs and restarts a region's launcher. Ready must mean serving: the moment /readyz first says 200, `token`
	 * (issued before the restart) gets its user's /me. Resolves with the ms from spawn to ready, and to ready saying
	 * global operations are unavailable (the global probe's first answer).
	 */
	async restartCutOff(region: string, token: string): Promise<{ readyMs: number; global: string; unavailableMs: number }> {
		await this.nodes[region]!.kill();
		const ready = await this.startNode(region);
		const me = await http(this.gateway(region), "GET", "/api/v1/me", { token });
		expect(me.status, `/me at the moment ${region}'s node said ready: ${me.text}`).toBe(200);
		await within(this.globalIs(region, "unavailable"), READY_BOUND_MS);
		return { ...ready, unavailableMs: Date.now() - this.nodes[region]!.startedAt };
	}

	/** Registers a user through the region's gateway (homed by `country`); kept in `users` when it succeeds. */
	async register(region: string, country = COUNTRY[region]!): Promise<HttpAnswer> {
		const username = `cutoff-${++this.seq}-${this.run}`;
		const res = await http(this.gateway(region), "POST", "/api/v1/auth/register", { body: { username, password: PASSWORD, country } });
		if (res.status === 201) this.users.push({ username, id: res.body.id, home: res.body.region });
		return res;
	}

	/**
	 * Registers as a client would: a refusal (503, retryable) is tried again until `boundMs`; anything else fails.
	 * Resolves with the 201 answer, the ms it took, and the refusals met.
	 */
	async registerRetrying(region: string, boundMs: number): Promise<{ registered: HttpAnswer; took: number; refusals: Map<string, number> }> {
		const refusals = new Map<string, number>();
		let registered: HttpAnswer | undefined;
		const took = await within(async () => {
			const started = Date.now();
			registered = await Promise.race([this.register(region), sleep(GLOBAL_FAILURE_BOUND_MS * 2).then(() => undefined)]);
			if (!registered) throw new Error(`a registration in ${region} had no answer after ${Date.now() - started} ms`);
			if (registered.status === 201) return true;
			expect(registered.status, registered.text).toBe(503);
			const why = `${registered.body?.error?.code}: ${registered.body?.error?.message}`;
			refusals.set(why, (refusals.get(why) ?? 0) + 1);
			return false;
		}, boundMs).catch(err => {
			throw new Error(`${err.message}; refusals: ${JSON.stringify([...refusals])}`);
		});
		return { registered: registered!, took, refusals };
	}

	login(region: string, username: string): Promise<HttpAnswer> {
		return http(this.gateway(region), "POST", "/api/v1/auth/login", { body: { login: username, password: PASSWORD } });
	}

	usersOf(region: string): User[] {
		return this.users.filter(u => u.home === region);
	}

	/**
	 * Login, GET /me, a profile update, token refresh and /me with the refreshed token, all through the region's own
	 * gateway; resolves with the refreshed access token. A login ends the user's previous app session.
	 */
	async serveOwnUser(region: string, user: User, country: string): Promise<string> {
		const base = this.gateway(region);
		const loggedIn = await this.login(region, user.username);
		expect(loggedIn.status, loggedIn.text).toBe(200);
		expect(loggedIn.body.region).toBe(region);
		const me = await http(base, "GET", "/api/v1/me", { token: loggedIn.body.accessToken });
		expect(me.status, me.text).toBe(200);
		expect(me.body).toMatchObject({ id: user.id, username: user.username, region });
		const updated = await http(base, "PATCH", "/api/v1/me", { token: loggedIn.body.accessToken, body: { country } });
		expect(updated.status, updated.text).toBe(200);
		expect(updated.body).toMatchObject({ id: user.id, country, region });
		const refreshed = await http(base, "POST", "/api/v1/auth/refresh", { body: { refreshToken: loggedIn.body.refreshToken } });
		expect(refreshed.status, refreshed.text).toBe(200);
		expect(refreshed.body.refreshToken).not.toBe(loggedIn.body.refreshToken);
		const again = await http(base, "GET", "/api/v1/me", { token: refreshed.body.accessToken });
		expect(again.status, again.text).toBe(200);
		expect(again.body).toMatchObject({ id: user.id, country });
		return refreshed.body.accessToken;
	}

	/** Why some user does not log in through `region`'s gateway at the home it was registered at; undefined when every one does. */
	async homeProblem(region: string): Promise<string | undefined> {
		for (const user of this.users) {
			const res = await this.login(region, user.username);
			if (res.status !== 200 || res.body.region !== user.home)
				return `${user.username} (home ${user.home}) at ${region}'s gateway: ${res.status} ${res.body?.region ?? res.body?.error?.code}`;
		}
		return undefined;
	}

	/** Waits until every user logs in through every listed region's gateway at its unchanged home; the ms it took. */
	async untilEveryHomeServed(regions: string[], ms: number): Promise<number> {
		let problem: string | undefined;
		return within(async () => {
			for (const region of regions) if ((problem = await this.homeProblem(region))) return false;
			return true;
		}, ms).catch(err => {
			throw new Error(`${err.message}: ${problem}`);
		});
	}

	/** The home a region's own mirror of the directory holds for a user, read from the mirror stream itself; undefined when it holds none. */
	async homeInMirror(region: string, userId: string): Promise<string | undefined> {
		const edge = await this.edge(region);
		const jsm = await edge.jetstreamManager();
		const msg = await jsm.streams
			.getMessage(`KV_${this.bucket}-${region}`, { last_by_subj: `$KV.${this.bucket}.${userKey(userId)}` })
			.catch((err: { api_error?: { err_code?: number } }) => {
				// No stream: the mirror watchdog is making the mirror anew (delete, then add), and it holds nothing yet.
				if (err.api_error?.err_code === NOT_FOUND_IN_STREAM || err.api_error?.err_code === STREAM_NOT_FOUND) return undefined;
				throw err;
			});
		return msg?.data.length ? msg.json<{ region: string }>().region : undefined;
	}

	/** The region's mirror, and the origin as the region's edge reaches it: what a failed catch-up is told by. */
	async mirrorState(region: string): Promise<unknown> {
		const nc = await this.edge(region);
		const info = await (await nc.jetstreamManager()).streams.info(`KV_${this.bucket}-${region}`);
		const origin = await (await nc.jetstreamManager({ domain: HUB_DOMAIN })).streams.info(`KV_${this.bucket}`).then(
			o => ({ state: o.state, leader: o.cluster?.leader, replicas: o.cluster?.replicas }),
			err => ({ unreachable: (err as Error).message })
		);
		return { state: info.state, mirror: info.mirror, origin };
	}

	private edge(region: string): Promise<NatsConnection> {
		let nc = this.edges.get(region);
		if (!nc) this.edges.set(region, (nc = connect({ servers: this.topology.urls[region]!, name: `launcher-regions-test-${region}` })));
		return nc;
	}

	private envOf(region: string): NodeJS.ProcessEnv {
		const placement = this.topology.placement(region);
		const run = { run: this.run, regionsDir: join(this.dir, "regions"), blindIndexKey: this.blindIndexKey, opsToken: this.opsToken };
		return launcherEnvOf(run, region, {
			EDGEHOME_NATS_URL: this.topology.urls[region]!,
			EDGEHOME_DIRECTORY_HUB: placement.originDomain,
			EDGEHOME_DIRECTORY_REPLICAS: String(placement.originReplicas),
			// A mirror whose consumer went with a hub server is repaired after 6 s without moving (shipped: 15–25 s).
			EDGEHOME_DIRECTORY_MIRROR_STALL_MS: "6000"
		});
	}

	/** The namespace prefix the launchers run under, for a client broker joining a region. */
	get namespacePrefix(): string {
		return `t${this.run}-`;
	}
}

/** What the region launchers of one test run share. */
export interface LauncherRun {
	/** runId(): names the run's databases, Redis keys and namespaces. */
	run: string;
	/** Region files with free ports (regionFilesWithFreePorts), for EDGEHOME_REGIONS_DIR. */
	regionsDir: string;
	/** The directory's blind-index key, base64, the same in every region. */
	blindIndexKey: string;
	opsToken: string;
}

/** The MariaDB database of one region of a run. */
function launcherMysqlUrl(run: string, region: string): string {
	return `${REAL.mysql}/edgehome_t_${run}_${region.replace(/-/g, "_")}`;
}

/**
 * The environment of one region's `npm run region` in a run: its own MariaDB database and Redis keys (removed by
 * cleanupLauncherStores), the run's namespace prefix and secrets; `extra` says where its NATS is (EDGEHOME_NATS_URL),
 * and anything else the test needs.
 */
export function launcherEnvOf(run: LauncherRun, region: string, extra: Record<string, string>): NodeJS.ProcessEnv {
	return {
		...process.env,
		EDGEHOME_REGIONS_DIR: run.regionsDir,
		EDGEHOME_MYSQL_URL: launcherMysqlUrl(run.run, region),
		EDGEHOME_REDIS_URL: REAL.redis,
		EDGEHOME_KEY_PREFIX: `edgehome-test:${run.run}`,
		EDGEHOME_NAMESPACE_PREFIX: `t${run.run}-`,
		EDGEHOME_BLIND_INDEX_KEY: run.blindIndexKey,
		EDGEHOME_OPS_TOKEN: run.opsToken,
		EDGEHOME_LOG_LEVEL: "info",
		...extra
	};
}

/** Drops the databases and Redis keys of a run's region launchers. */
export async function cleanupLauncherStores(run: string, regions: string[]): Promise<void> {
	for (const region of regions)
		await cleanupRealStores({ sql: launcherMysqlUrl(run, region), redis: REAL.redis, keyPrefix: `edgehome-test:${run}:` }).catch(() => undefined);
}

/** A refused operation that needs global agreement: 503, a documented retryable code, Retry-After, within the bound. */
export function expectRetryableRefusal(what: string, { ms, result }: { ms: number; result: unknown }, codes = ["DIRECTORY_UNAVAILABLE"]): void {
	const res = result as HttpAnswer;
	console.log(`${what}: ${res.status} ${res.body?.error?.code} in ${ms} ms (Retry-After ${res.headers.get("retry-after")})`);
	expect({ status: res.status, code: codes.includes(res.body?.error?.code) }, res.text).toEqual({ status: 503, code: true });
	expect(Number(res.headers.get("retry-after"))).toBeGreaterThan(0);
	expect(ms).toBeLessThan(GLOBAL_FAILURE_BOUND_MS);
}
