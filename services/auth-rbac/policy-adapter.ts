import type { Adapter, Model } from "casbin";
import type { Generated, Kysely, Transaction } from "kysely";
import type { Rule } from "./model.ts";

export interface RbacTables {
	rbac_rules: { id: Generated<number>; ptype: Rule["ptype"]; v0: string; v1: string; v2: string };
	rbac_version: { id: number; version: number };
}

/** What a write did: rows inserted or deleted, and the version it bumped to (absent when nothing changed). */
export interface Change {
	rows: number;
	version?: number;
}

type Trx = Transaction<RbacTables>;

const FIELDS = ["v0", "v1", "v2"] as const;
/** Rows per INSERT: 4 parameters each stays far below every engine's parameter limit. */
const INSERT_CHUNK = 500;

function policyType(ptype: string): Rule["ptype"] {
	if (ptype !== "p" && ptype !== "g") throw new Error(`unsupported policy type "${ptype}"`);
	return ptype;
}

function toRule(ptype: string, values: string[]): Rule {
	return { ptype: policyType(ptype), v0: values[0] ?? "", v1: values[1] ?? "", v2: values[2] ?? "" };
}

async function insert(trx: Trx, rules: Rule[]): Promise<number> {
	let rows = 0;
	for (let i = 0; i < rules.length; i += INSERT_CHUNK) {
		// Insert-if-absent: replaying a change (a relayed event, a retried import) is harmless.
		const [res] = await trx
			.insertInto("rbac_rules")
			.ignore()
			.values(rules.slice(i, i + INSERT_CHUNK))
			.execute();
		rows += Number(res?.numInsertedOrUpdatedRows ?? 0);
	}
	return rows;
}

async function remove(trx: Trx, rules: Rule[]): Promise<number> {
	let rows = 0;
	for (const r of rules) {
		const res = await trx
			.deleteFrom("rbac_rules")
			.where("ptype", "=", r.ptype)
			.where("v0", "=", r.v0)
			.where("v1", "=", r.v1)
			.where("v2", "=", r.v2)
			.executeTakeFirst();
		rows += Number(res.numDeletedRows);
	}
	return rows;
}

/**
 * casbin's view of `rbac_rules`, and (migrations aside) the only code that touches the rbac
 * tables. Every write runs in a transaction that also bumps `rbac_version` when it changed a row,
 * so a node that missed a change event still sees it with one cheap read.
 */
export class SqlPolicyAdapter implements Adapter {
	private readonly db: Kysely<RbacTables>;
	constructor(db: Kysely<RbacTables>) {
		this.db = db;
	}

	async version(): Promise<number> {
		const row = await this.db.selectFrom("rbac_version").select("version").where("id", "=", 1).executeTakeFirst();
		return Number(row?.version ?? 0);
	}

	async loadPolicy(model: Model): Promise<void> {
		const rows = await this.db.selectFrom("rbac_rules").select(["ptype", "v0", "v1", "v2"]).orderBy("id").execute();
		const p: string[][] = [];
		const g: string[][] = [];
		for (const r of rows) {
			if (r.ptype === "p") p.push([r.v0, r.v1, r.v2]);
			else g.push([r.v0, r.v1]);
		}
		// One batch per type into the emptied model: its duplicate check has nothing to compare
		// against, where a line at a time (Helper.loadPolicyLine) spends 200 ms on 10 000 rules.
		model.addPolicies("p", "p", p);
		model.addPolicies("g", "g", g);
	}

	/** Replaces every stored rule with the model's. */
	async savePolicy(model: Model): Promise<boolean> {
		const rules = [...model.getPolicy("p", "p").map(v => toRule("p", v)), ...model.getPolicy("g", "g").map(v => toRule("g", v))];
		await this.write(async trx => Number((await trx.deleteFrom("rbac_rules").executeTakeFirst()).numDeletedRows) + (await insert(trx, rules)));
		return true;
	}

	async addPolicy(_sec: string, ptype: string, rule: string[]): Promise<void> {
		await this.add([toRule(ptype, rule)]);
	}

	async removePolicy(_sec: string, ptype: string, rule: string[]): Promise<void> {
		await this.remove([toRule(ptype, rule)]);
	}

	async removeFilteredPolicy(_sec: string, ptype: string, fieldIndex: number, ...fieldValues: string[]): Promise<void> {
		await this.removeFiltered(policyType(ptype), fieldIndex, fieldValues);
	}

	add(rules: Rule[]): Promise<Change> {
		return this.write(trx => insert(trx, rules));
	}

	remove(rules: Rule[]): Promise<Change> {
		return this.write(trx => remove(trx, rules));
	}

	/** Deletes the `ptype` rules whose fields from `fieldIndex` on equal `values` (an empty value matches anything). */
	removeFiltered(ptype: Rule["ptype"], fieldIndex: number, values: string[]): Promise<Change> {
		return this.write(async trx => {
			let q = trx.deleteFrom("rbac_rules").where("ptype", "=", ptype);
			values.forEach((value, i) => {
				const field = FIELDS[fieldIndex + i];
				if (!field) throw new Error(`policy field ${fieldIndex + i} does not exist`);
				if (value !== "") q = q.where(field, "=", value);
			});
			return Number((await q.executeTakeFirst()).numDeletedRows);
		});
	}

	/** Sets the g rules of `member` to exactly `rules` (a move's import, which may be a retry). */
	replaceGrants(member: string, rules: Rule[]): Promise<Change> {
		return this.write(async trx => {
			const deleted = await trx.deleteFrom("rbac_rules").where("ptype", "=", "g").where("v0", "=", member).executeTakeFirst();
			return Number(deleted.numDeletedRows) + (await insert(trx, rules));
		});
	}

	grantsOf(member: string): Promise<Rule[]> {
		return this.db.selectFrom("rbac_rules").select(["ptype", "v0", "v1", "v2"]).where("ptype", "=", "g").where("v0", "=", member).orderBy("id").execute();
	}

	async countGrants(member: string): Promise<number> {
		const r = await this.db
			.selectFrom("rbac_rules")
			.select(eb => eb.fn.countAll().as("n"))
			.where("ptype", "=", "g")
			.where("v0", "=", member)
			.executeTakeFirst();
		return Number(r?.n ?? 0);
	}

	/** A role exists while it has a permission or is inherited by (or granted to) someone. */
	async roleExists(role: string): Promise<boolean> {
		const permission = await this.db.selectFrom("rbac_rules").select("id").where("ptype", "=", "p").where("v0", "=", role).limit(1).executeTakeFirst();
		if (permission) return true;
		return Boolean(await this.db.selectFrom("rbac_rules").select("id").where("ptype", "=", "g").where("v1", "=", role).limit(1).executeTakeFirst());
	}

	private async write(change: (trx: Trx) => Promise<number>): Promise<Change> {
		return this.db.transaction().execute(async trx => {
			const rows = await change(trx);
			if (rows === 0) return { rows };
			await trx
				.updateTable("rbac_version")
				.set(eb => ({ version: eb("version", "+", 1) }))
				.where("id", "=", 1)
				.execute();
			const row = await trx.selectFrom("rbac_version").select("version").where("id", "=", 1).executeTakeFirstOrThrow();
			return { rows, version: Number(row.version) };
		});
	}
}
