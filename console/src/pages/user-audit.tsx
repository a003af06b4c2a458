import { api, withQuery } from "../api.ts";
import { AuditTable } from "../audit-table.tsx";
import { href } from "../route.ts";
import type { AuditPage } from "../types.ts";
import { Panel, Show, useLoad } from "../ui.tsx";

const RECENT = 20;

/** What was done to the user, newest first, in every region (the full query is on the audit log page). */
export function UserAudit({ userId }: { userId: string }) {
	const page = useLoad(() => api<AuditPage>("GET", withQuery("/api/v1/admin/audit", { target: userId, limit: RECENT })), [userId]);
	return (
		<Panel
			title="Audit"
			id="user-audit"
			actions={
				<a class="small" href={href({ page: "audit", actor: "", target: userId, action: "", region: "" })}>
					Open in the audit log
				</a>
			}
		>
			<Show loaded={page} what="The audit log">
				{p => <AuditTable records={p.items} />}
			</Show>
		</Panel>
	);
}
