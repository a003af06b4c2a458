import { regionRuntimeOf } from "../../regions/runtime/region-runtime.ts";
import type { Reconciliation } from "../../services/sv-money/reconciliation.ts";
import type { WalletView } from "../../services/sv-money/wallet-reads.ts";
import type { ReplContext } from "./context.ts";
import { describeError } from "./describe-error.ts";
import type { Subcommand } from "./region.command.ts";
import { USER_ARGUMENT, userIdOf } from "./user-argument.ts";

/** A reconciliation reads every account of a region: far longer than an ordinary call may take. */
const RECONCILE_TIMEOUT_MS = 120_000;

const verdict = (ok: boolean) => (ok ? "ok" : "FAILED");

/** One region's reconciliation: a line per currency, each failing account, then the region's verdict. */
function printReconciliation(print: ReplContext["print"], r: Reconciliation): void {
	const region = r.region.padEnd(12);
	for (const c of r.currencies) print(`${region} ${c.currency}  sum=${c.sum.padEnd(12)} ${verdict(c.ok)}`);
	for (const m of r.mismatches) print(`${region} ${m.currency}  mismatch ${m.account}: balance=${m.balance} entries=${m.entries}`);
	for (const n of r.negative) print(`${region} ${n.currency}  negative ${n.account}: balance=${n.balance}`);
	print(`${region} ${verdict(r.ok)}: accounts=${r.accounts} currencies=${r.currencies.length} checked ${r.checkedAt}`);
}

/** `wallet …` sub-commands, by name: sv-money's open reads (adjusting and freezing are api-cms's, which holds the `money` key). */
export function walletSubcommands({ regions, print }: ReplContext): Record<string, Subcommand> {
	return {
		show: {
			usage: `wallet show ${USER_ARGUMENT}`,
			async run(broker, [arg]) {
				if (!arg) return print(`usage: wallet show ${USER_ARGUMENT}`);
				const userId = await userIdOf(broker, arg);
				// This console routes no calls by user: it asks the home region itself.
				const home = await broker.call<{ region: string }, unknown>("sv-region.lookup", { userId });
				const wallet = await regionRuntimeOf(broker).call<WalletView>(home.region, "sv-money.wallet", { userId });
				print(`${wallet.userId} home=${home.region} ${wallet.frozen ? "FROZEN" : "active"} (amounts in minor units)`);
				if (!wallet.balances.length) return print("  no accounts yet");
				for (const b of wallet.balances) print(`  ${b.currency}  balance=${b.balance} available=${b.available} pending=${b.pending}`);
			}
		},
		reconcile: {
			usage: "wallet reconcile [regionId]",
			async run(broker, [id]) {
				if (id && !regions.some(r => r.id === id)) return print(`unknown region "${id}"; known: ${regions.map(r => r.id).join(", ")}`);
				const targets = id ? [id] : regions.map(r => r.id);
				const runtime = regionRuntimeOf(broker);
				// Every region at once (each reads its own database), printed in order; one that cannot answer hides none of the others.
				const answers = await Promise.allSettled(
					targets.map(region => runtime.call<Reconciliation>(region, "sv-money.reconcile", { region }, { timeout: RECONCILE_TIMEOUT_MS }))
				);
				const failed: string[] = [];
				answers.forEach((answer, i) => {
					const region = targets[i]!;
					if (answer.status === "rejected") print(`${region.padEnd(12)} FAILED: ${describeError(answer.reason)}`);
					else printReconciliation(print, answer.value);
					if (answer.status === "rejected" || !answer.value.ok) failed.push(region);
				});
				print(
					failed.length
						? `reconciliation FAILED in ${failed.length} of ${targets.length} region(s): ${failed.join(", ")}`
						: `reconciliation ok in ${targets.length} region(s)`
				);
			}
		}
	};
}
