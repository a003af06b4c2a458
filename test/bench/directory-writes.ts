import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { KV, NatsConnection } from "nats";
import { connect, JSONCodec } from "nats";
import { startEdgeTopology } from "../harness/edge-topology.ts";
import { freePort } from "../harness/free-port.ts";
import type { Cleanups } from "./measure.ts";
import { READY_TIMEOUT_MS, round } from "./measure.ts";

/**
 * The price of the directory's durability: a registration's directory writes (an identity
 * reservation, then the user's entry: two creates on the origin bucket, one after the other),
 * made from a region other than the origin's, in today's layout (a hub of three servers, the
 * origin with three replicas, reached through the region's edge server as a leaf node) against
 * the former single-primary one (one NATS cluster per region joined by gateways, the origin one
 * replica in cn-east). Both sides use nats.js KV directly, the operations the directory store makes.
 */

const REGIONS = ["cn-east", "ap-south", "eu-central"];
const WRITER = "ap-south";
const NATS_SERVER = process.env.EDGEHOME_TEST_NATS_SERVER ?? "nats-server";
const json = JSONCodec<unknown>();

export interface WriteFigures {
	registrationsPerSec: number;
	p50Ms: number;
	p99Ms: number;
}

/** The former layout: per region a one-server cluster routed to itself (JetStream needs a route to accept gateways), all gatewayed. */
async function singlePrimary(cleanups: Cleanups): Promise<string> {
	const dir = mkdtempSync(join(tmpdir(), "edgehome-bench-primary-"));
	const ports = await Promise.all(REGIONS.map(async () => ({ client: await freePort(), cluster: await freePort(), gateway: await freePort() })));
	const procs: ChildProcess[] = [];
	cleanups.push(async () => {
		for (const p of procs) p.kill("SIGKILL");
		rmSync(dir, { recursive: true, force: true });
	});
	REGIONS.forEach((region, i) => {
		const p = ports[i]!;
		const conf = join(dir, `${region}.conf`);
		writeFileSync(
			conf,
			[
				`server_name: "nats-${region}"`,
				`listen: "127.0.0.1:${p.client}"`,
				`jetstream { store_dir: "${join(dir, `${region}-js`)}" }`,
				`cluster { name: "${region}", listen: "127.0.0.1:${p.cluster}", routes: ["nats-route://127.0.0.1:${p.cluster}"] }`,
				`gateway { name: "${region}", listen: "127.0.0.1:${p.gateway}", gateways: [${REGIONS.map((r, j) => `{ name: "${r}", urls: ["nats://127.0.0.1:${ports[j]!.gateway}"] }`).join(", ")}] }`
			].join("\n")
		);
		procs.push(spawn(NATS_SERVER, ["-c", conf], { stdio: "ignore" }));
	});
	return `nats://127.0.0.1:${ports[REGIONS.indexOf(WRITER)]!.client}`;
}

/** Opens the origin bucket, retrying while the servers elect their JetStream leaders. */
async function originBucket(nc: NatsConnection, open: () => Promise<KV>): Promise<KV> {
	const deadline = Date.now() + READY_TIMEOUT_MS;
	for (;;) {
		try {
			const kv = await open();
			await kv.create(`probe.${Date.now()}`, json.encode({}));
			return kv;
		} catch (err) {
			if (Date.now() > deadline)
				throw new Error(`directory bucket not writable through ${nc.getServer()} within ${READY_TIMEOUT_MS} ms: ${(err as Error).message}`);
			await sleep(200);
		}
	}
}

async function registrations(kv: KV, count: number, tag: string): Promise<WriteFigures> {
	const times: number[] = [];
	const started = performance.now();
	for (let i = 0; i < count; i++) {
		const t = performance.now();
		await kv.create(`identity.username.${tag}-${i}`, json.encode({ userId: `${tag}-${i}` }));
		await kv.create(`user.${tag}-${i}`, json.encode({ region: WRITER, epoch: 1, state: "active", pinned: false }));
		times.push(performance.now() - t);
	}
	const elapsed = performance.now() - started;
	times.sort((a, b) => a - b);
	const at = (p: number) => times[Math.min(times.length - 1, Math.floor((p / 100) * times.length))]!;
	return { registrationsPerSec: round((count * 1000) / elapsed, 1), p50Ms: round(at(50), 3), p99Ms: round(at(99), 3) };
}

/** Sequential registrations from ap-south in both layouts, in alternating rounds. */
export async function benchDirectoryWrites(cleanups: Cleanups, count: number, rounds: number): Promise<{ singlePrimary: WriteFigures; hub: WriteFigures }> {
	const primaryUrl = await singlePrimary(cleanups);
	const topology = await startEdgeTopology(REGIONS);
	cleanups.push(() => topology.stop());
	const oldNc = await connect({ servers: primaryUrl, timeout: READY_TIMEOUT_MS });
	const newNc = await connect({ servers: topology.urls[WRITER]!, timeout: READY_TIMEOUT_MS });
	cleanups.push(async () => {
		await oldNc.close();
		await newNc.close();
	});
	const sides = {
		singlePrimary: await originBucket(oldNc, () => oldNc.jetstream().views.kv("bench-directory", { history: 1, placement: { cluster: "cn-east", tags: [] } })),
		hub: await originBucket(newNc, () => newNc.jetstream({ domain: "hub" }).views.kv("bench-directory", { history: 1, replicas: 3 }))
	};
	const samples: Record<keyof typeof sides, WriteFigures[]> = { singlePrimary: [], hub: [] };
	for (let r = 0; r < rounds; r++) for (const name of ["singlePrimary", "hub"] as const) samples[name].push(await registrations(sides[name], count, `r${r}`));
	const mean = (list: WriteFigures[]): WriteFigures => ({
		registrationsPerSec: round(list.reduce((a, f) => a + f.registrationsPerSec, 0) / list.length, 1),
		p50Ms: round(list.reduce((a, f) => a + f.p50Ms, 0) / list.length, 3),
		p99Ms: round(list.reduce((a, f) => a + f.p99Ms, 0) / list.length, 3)
	});
	return { singlePrimary: mean(samples.singlePrimary), hub: mean(samples.hub) };
}
