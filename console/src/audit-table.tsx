import { href } from "./route.ts";
import type { AuditRecord } from "./types.ts";
import { Badge, Table, time } from "./ui.tsx";

const OUTCOME_KIND = { success: "ok", failure: "danger", refused: "warn" } as const;

/** A user id links to the user's page; `operator:…` and `system:…` actors are shown as they are. */
function Who({ id }: { id: string | null }) {
	if (!id) return <>—</>;
	return /^[0-9a-z]{26}$/.test(id) ? (
		<a href={href({ page: "user", id })}>
			<code>{id}</code>
		</a>
	) : (
		<code>{id}</code>
	);
}

export function AuditTable({ records }: { records: AuditRecord[] }) {
	return (
		<Table
			name="audit"
			rows={records}
			rowKey={r => `${r.region}-${r.seq}`}
			empty="No audit record."
			columns={[
				{ label: "When", cell: r => time(r.at) },
				{ label: "Region", cell: r => r.region },
				{ label: "Action", cell: r => <code>{r.action}</code> },
				{ label: "Outcome", cell: r => <Badge kind={OUTCOME_KIND[r.outcome]}>{r.outcome}</Badge> },
				{ label: "Actor", cell: r => <Who id={r.actor} /> },
				{ label: "Target", cell: r => <Who id={r.target} /> }
			]}
		/>
	);
}
