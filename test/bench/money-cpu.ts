import { readdirSync, readFileSync } from "node:fs";
import { treeBusySeconds } from "./measure.ts";

/**
 * CPU seconds spent so far by each side of bench:money (Linux /proc; zeros elsewhere): this process
 * (the client), the processes it started (the money nodes), the MariaDB server and the NATS server.
 * Per transfer, they say where a case's cost goes; on a machine with few cores that decides the
 * rates more than any wait. MariaDB's and NATS's figures include whatever else uses them meanwhile.
 */

export interface CpuSeconds {
	client: number;
	nodes: number;
	mariadb: number;
	nats: number;
}

const TICKS_PER_SECOND = 100;

function busySeconds(pid: number): number {
	try {
		const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
		// Fields after the command name (which may hold spaces): utime is the 14th, stime the 15th.
		const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
		return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
	} catch {
		return 0; // gone, or no /proc
	}
}

/** Pids of the processes named `comm` whose command line has every word of `args`. */
export function pidsOf(comm: string, args: string[] = []): number[] {
	const pids: number[] = [];
	let entries: string[];
	try {
		entries = readdirSync("/proc").filter(e => /^\d+$/.test(e));
	} catch {
		return pids;
	}
	for (const entry of entries) {
		try {
			if (readFileSync(`/proc/${entry}/comm`, "utf8").trim() !== comm) continue;
			const words = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
			if (args.every(a => words.includes(a))) pids.push(Number(entry));
		} catch {
			// gone meanwhile, or not ours to read
		}
	}
	return pids;
}

export interface CpuWatch {
	now(): CpuSeconds;
}

/** Watches the MariaDB server and the NATS server listening on `natsPort`, found once. */
export function watchCpu(natsPort: string): CpuWatch {
	const mariadb = [...pidsOf("mariadbd"), ...pidsOf("mysqld")];
	const nats = pidsOf("nats-server", [natsPort]);
	const sum = (pids: number[]) => pids.reduce((s, pid) => s + busySeconds(pid), 0);
	return {
		now() {
			const own = process.cpuUsage();
			const client = (own.user + own.system) / 1e6;
			const tree = treeBusySeconds() ?? client;
			return { client, nodes: Math.max(0, tree - busySeconds(process.pid)), mariadb: sum(mariadb), nats: sum(nats) };
		}
	};
}

export function cpuSince(a: CpuSeconds, b: CpuSeconds): CpuSeconds {
	return { client: b.client - a.client, nodes: b.nodes - a.nodes, mariadb: b.mariadb - a.mariadb, nats: b.nats - a.nats };
}
