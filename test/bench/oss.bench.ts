import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { connect, StorageType } from "nats";
import { deleteKvBucket, REAL, runId } from "../harness/real-servers.ts";
import { round } from "./measure.ts";

/**
 * `npm run bench:oss`: files through a gateway against the NATS Object Store itself, on this
 * machine's NATS. A region node runs in its own process as deployed (api-app and sv-oss together,
 * oss-server.ts); this process is the client. (a) a 20 MB upload and its download through the
 * gateway, against (b) a raw Object Store put and get of the same 20 MB from this process (nats.js
 * `js.views.os`), best of ROUNDS each; (c) the node's resident memory growth (its /proc status,
 * sampled every 20 ms) while PARALLEL uploads of 20 MB run at once. Ends with one JSON line.
 */

const SERVER_SCRIPT = join(import.meta.dirname, "oss-server.ts");
const FILE_BYTES = 20 * 1024 * 1024;
const ROUNDS = Number(process.env.BENCH_OSS_ROUNDS ?? 3);
const PARALLEL = 10;
const CHUNK = Buffer.alloc(64 * 1024, 0x61);

/** FILE_BYTES of text, made as it is read: the client holds no file. */
function body(): ReadableStream<Uint8Array> {
	let sent = 0;
	return new ReadableStream({
		pull(controller) {
			if (sent >= FILE_BYTES) return controller.close();
			const n = Math.min(CHUNK.length, FILE_BYTES - sent);
			sent += n;
			controller.enqueue(CHUNK.subarray(0, n));
		}
	});
}

async function drain(stream: ReadableStream<Uint8Array>): Promise<number> {
	let n = 0;
	for await (const chunk of stream) n += chunk.length;
	return n;
}

const rssOf = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) * 1024;
const mbps = (ms: number) => round(FILE_BYTES / 1024 / 1024 / (ms / 1000), 1);

async function timed(fn: () => Promise<unknown>): Promise<number> {
	const started = performance.now();
	await fn();
	return performance.now() - started;
}

async function main(): Promise<void> {
	const run = runId();
	const bucket = `oss-bench-${run}`;
	const prefix = `ob${run}-`;
	const env = { ...process.env, EDGEHOME_PII_KEYS: `k1:${randomBytes(32).toString("base64")}` };
	const child = spawn(process.execPath, [SERVER_SCRIPT, REAL.nats, bucket, prefix], { env, stdio: ["pipe", "pipe", "inherit"] });
	const nc = await connect({ servers: REAL.nats });
	const jsm = await nc.jetstreamManager();
	try {
		const port = await new Promise<number>((resolve, reject) => {
			child.once("exit", code => reject(new Error(`oss-server exited (${code})`)));
			child.stdout.setEncoding("utf8").on("data", (text: string) => {
				const m = /port (\d+)/.exec(text);
				if (m) resolve(Number(m[1]));
			});
		});
		const base = `http://127.0.0.1:${port}`;
		const post = (path: string, json: unknown) =>
			fetch(`${base}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(json) }).then(r => r.json());
		await post("/api/v1/auth/register", { username: "bencher", password: "files bench 2026" });
		const { accessToken } = (await post("/api/v1/auth/login", { login: "bencher", password: "files bench 2026" })) as { accessToken: string };
		const auth = { authorization: `Bearer ${accessToken}` };
		const upload = async () => {
			const res = await fetch(`${base}/api/v1/files`, {
				method: "POST",
				headers: { ...auth, "content-type": "text/plain", "x-file-name": "bench.txt" },
				body: body(),
				duplex: "half"
			} as RequestInit);
			const answer = (await res.json()) as { id: string; size: number };
			if (res.status !== 201 || answer.size !== FILE_BYTES) throw new Error(`upload answered ${res.status}: ${JSON.stringify(answer)}`);
			return answer.id;
		};
		const download = async (id: string) => {
			const res = await fetch(`${base}/api/v1/files/${id}`, { headers: auth });
			if ((await drain(res.body!)) !== FILE_BYTES) throw new Error("download cut short");
		};

		const os = await nc.jetstream().views.os(`bench-raw-${run}`, { storage: StorageType.File });
		const best = { gatewayUp: Infinity, gatewayDown: Infinity, rawPut: Infinity, rawGet: Infinity };
		for (let round = 0; round < ROUNDS; round++) {
			let id = "";
			best.gatewayUp = Math.min(best.gatewayUp, await timed(async () => (id = await upload())));
			best.gatewayDown = Math.min(best.gatewayDown, await timed(() => download(id)));
			await fetch(`${base}/api/v1/files/${id}`, { method: "DELETE", headers: auth });
			best.rawPut = Math.min(best.rawPut, await timed(() => os.put({ name: `raw-${round}` }, body())));
			best.rawGet = Math.min(best.rawGet, await timed(async () => drain((await os.get(`raw-${round}`))!.data)));
		}

		// Parallel uploads: the node's memory, sampled while they run.
		const before = rssOf(child.pid!);
		let peak = before;
		const sampler = setInterval(() => {
			peak = Math.max(peak, rssOf(child.pid!));
		}, 20);
		const parallelMs = await timed(() => Promise.all(Array.from({ length: PARALLEL }, upload)));
		clearInterval(sampler);
		peak = Math.max(peak, rssOf(child.pid!));

		const throughputRatio = round((best.rawPut + best.rawGet) / (best.gatewayUp + best.gatewayDown), 2);
		const rssGrowthMb = round((peak - before) / 1024 / 1024, 1);
		console.log("case                               ms      MB/s");
		for (const [name, ms] of [
			["gateway upload (20 MB)", best.gatewayUp],
			["gateway download (20 MB)", best.gatewayDown],
			["raw Object Store put (20 MB)", best.rawPut],
			["raw Object Store get (20 MB)", best.rawGet]
		] as const)
			console.log(`${name.padEnd(32)} ${round(ms, 0).toString().padStart(6)} ${mbps(ms).toString().padStart(8)}`);
		console.log(
			`${PARALLEL} uploads of 20 MB at once: ${round(parallelMs, 0)} ms, node RSS ${round(before / 1048576, 1)} MB → peak ${round(peak / 1048576, 1)} MB`
		);
		console.log(`gateway / raw throughput ${throughputRatio} (goal ≥ 0.7); RSS growth ${rssGrowthMb} MB (goal < 64); load average ${loadavg()[0]!.toFixed(1)}`);
		console.log(
			JSON.stringify({
				bench: "oss",
				gatewayUploadMBps: mbps(best.gatewayUp),
				gatewayDownloadMBps: mbps(best.gatewayDown),
				rawPutMBps: mbps(best.rawPut),
				rawGetMBps: mbps(best.rawGet),
				throughputRatio,
				throughputGoalMet: throughputRatio >= 0.7,
				parallelUploads: PARALLEL,
				rssGrowthMb,
				rssGoalMet: rssGrowthMb < 64
			})
		);
	} finally {
		child.stdin.end();
		await new Promise(r => (child.exitCode === null ? child.once("exit", r) : r(null)));
		for (const stream of [`OBJ_bench-raw-${run}`, `OBJ_files-${prefix}cn-east`]) await jsm.streams.delete(stream).catch(() => undefined);
		await nc.close();
		await deleteKvBucket(bucket);
	}
}

await main();
