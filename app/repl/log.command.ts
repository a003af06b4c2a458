import type { Verification } from "../../services/sv-log/chain.ts";
import type { ReplContext } from "./context.ts";
import type { Subcommand } from "./region.command.ts";

const VERIFY_USAGE = "log verify [region]";

/** One region's verification as one line: its records checked from its checkpoint, or where the chain first breaks. */
function describe(v: Verification): string {
	const span = `${v.checked} records checked (seq ${v.from + 1}..${v.to}${v.from ? `, after the checkpoint at ${v.from}` : ""})`;
	if (v.ok) return `${v.region}: ok, ${span}`;
	const b = v.broken!;
	return `${v.region}: BROKEN at seq ${b.seq}${b.id ? ` (record ${b.id})` : ""}: ${b.reason}; ${span} before it`;
}

/** `log …` sub-commands: the audit log's hash chains (services/sv-log), of one region or of each in turn. */
export function logSubcommands({ regions, print }: ReplContext): Record<string, Subcommand> {
	return {
		verify: {
			usage: VERIFY_USAGE,
			async run(broker, [region]) {
				for (const id of region ? [region] : regions.map(r => r.id)) {
					try {
						print(describe(await broker.call<Verification, unknown>("sv-log.verify", { region: id })));
					} catch (err) {
						// One region out of reach does not hide the others' answers.
						if (region) throw err;
						print(`${id}: not verified: ${(err as Error).message}`);
					}
				}
			}
		}
	};
}
