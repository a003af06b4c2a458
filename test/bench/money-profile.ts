import type { Connection, RowDataPacket } from "mysql2/promise";
import type { CpuSeconds } from "./money-cpu.ts";
import { cpuSince } from "./money-cpu.ts";
import type { MoneyNodeStats } from "./money-server.ts";
import type { StatementCounts } from "./money-statements.ts";
import { countsSince } from "./money-statements.ts";

/**
 * bench:money's profile of a case: what the fence made of its writes (batches, writes per batch),
 * the statements sent per transfer and what each took, deadlocks, and the CPU each side spent.
 */

export interface Profile {
	transfers: number;
	batches: number;
	batchedWrites: number;
	leftBatches: number;
	statements: StatementCounts;
	/** Server-wide InnoDB counters (other sessions on this MariaDB included). */
	innodb: InnodbCounters;
	cpu: CpuSeconds;
}

export interface InnodbCounters {
	rowLockWaits: number;
	rowLockMs: number;
	deadlocks: number;
}

export async function innodbCounters(conn: Connection): Promise<InnodbCounters> {
	const [rows] = await conn.query<({ Variable_name: string; Value: string } & RowDataPacket)[]>(
		"show global status where Variable_name in ('Innodb_row_lock_waits', 'Innodb_row_lock_time', 'Innodb_deadlocks')"
	);
	const v = Object.fromEntries(rows.map(r => [r.Variable_name, Number(r.Value)]));
	return { rowLockWaits: v.Innodb_row_lock_waits ?? 0, rowLockMs: v.Innodb_row_lock_time ?? 0, deadlocks: v.Innodb_deadlocks ?? 0 };
}

const innodbSince = (a: InnodbCounters, b: InnodbCounters): InnodbCounters => ({
	rowLockWaits: b.rowLockWaits - a.rowLockWaits,
	rowLockMs: b.rowLockMs - a.rowLockMs,
	deadlocks: b.deadlocks - a.deadlocks
});

export function emptyProfile(): Profile {
	return {
		transfers: 0,
		batches: 0,
		batchedWrites: 0,
		leftBatches: 0,
		statements: { kinds: {}, deadlocks: 0, lockWaitTimeouts: 0 },
		innodb: { rowLockWaits: 0, rowLockMs: 0, deadlocks: 0 },
		cpu: { client: 0, nodes: 0, mariadb: 0, nats: 0 }
	};
}

export interface Sample {
	stats: MoneyNodeStats;
	innodb: InnodbCounters;
	cpu: CpuSeconds;
}

export function addTo(profile: Profile, transfers: number, before: Sample, after: Sample): void {
	profile.transfers += transfers;
	const innodb = innodbSince(before.innodb, after.innodb);
	profile.innodb.rowLockWaits += innodb.rowLockWaits;
	profile.innodb.rowLockMs += innodb.rowLockMs;
	profile.innodb.deadlocks += innodb.deadlocks;
	const cpu = cpuSince(before.cpu, after.cpu);
	for (const side of Object.keys(cpu) as (keyof CpuSeconds)[]) profile.cpu[side] += cpu[side];
	profile.batches += after.stats.batches.batches - before.stats.batches.batches;
	profile.batchedWrites += after.stats.batches.writes - before.stats.batches.writes;
	profile.leftBatches += after.stats.batches.left - before.stats.batches.left;
	const d = countsSince(before.stats.statements, after.stats.statements);
	for (const [kind, k] of Object.entries(d.kinds)) {
		const sum = (profile.statements.kinds[kind] ??= { count: 0, ms: 0 });
		sum.count += k.count;
		sum.ms += k.ms;
	}
	profile.statements.deadlocks += d.deadlocks;
	profile.statements.lockWaitTimeouts += d.lockWaitTimeouts;
}

export const statementsOf = (p: Profile) => Object.values(p.statements.kinds).reduce((s, k) => s + k.count, 0);

export function printProfile(name: string, p: Profile): void {
	const per = (n: number) => (p.transfers ? n / p.transfers : 0);
	const ms = (seconds: number) => ((seconds * 1000) / Math.max(1, p.transfers)).toFixed(3);
	const machine = p.cpu.client + p.cpu.nodes + p.cpu.mariadb + p.cpu.nats > 0;
	console.log(`  ${name}: ${p.transfers.toLocaleString("en-US")} transfers`);
	if (machine)
		console.log(
			`    CPU ms per transfer: client ${ms(p.cpu.client)}, money nodes ${ms(p.cpu.nodes)}, MariaDB ${ms(p.cpu.mariadb)}, NATS ${ms(p.cpu.nats)}; ` +
				`total ${ms(p.cpu.client + p.cpu.nodes + p.cpu.mariadb + p.cpu.nats)}`
		);
	if (p.batches)
		console.log(
			`    fence: ${p.batches.toLocaleString("en-US")} batches, ${(p.batchedWrites / p.batches).toFixed(1)} writes per batch, ` +
				`${per(p.batchedWrites).toFixed(2)} batched writes per transfer (a deadlock runs its batch's again), ${p.leftBatches} left their batch`
		);
	console.log(
		`    ${per(statementsOf(p)).toFixed(2)} statements per transfer; deadlocks ${p.statements.deadlocks}, lock wait timeouts ${p.statements.lockWaitTimeouts}`
	);
	const kinds = Object.entries(p.statements.kinds).sort((a, b) => b[1].count - a[1].count);
	for (const [kind, k] of kinds)
		if (per(k.count) >= 0.01)
			console.log(`      ${kind.padEnd(48)} ${per(k.count).toFixed(2).padStart(6)} per transfer, ${(k.ms / k.count).toFixed(3).padStart(8)} ms each`);
	if (machine)
		console.log(
			`    InnoDB (server-wide): ${p.innodb.rowLockWaits} row lock waits (${p.innodb.rowLockMs} ms), ${p.innodb.deadlocks} deadlocks, ${per(p.innodb.rowLockWaits).toFixed(3)} waits per transfer`
		);
}
