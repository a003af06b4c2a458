import { useAccess } from "../access.ts";
import { api } from "../api.ts";
import type { Session } from "../types.ts";
import type { Column } from "../ui.tsx";
import { Failure, Panel, Show, Table, time, useAction, useLoad } from "../ui.tsx";

export function UserSessions({ userId }: { userId: string }) {
	const access = useAccess();
	const sessions = useLoad(() => api<Session[]>("GET", `/api/v1/admin/users/${userId}/sessions`), [userId]);
	const end = useAction();
	const columns: Column<Session>[] = [
		{ label: "Client", cell: s => s.client },
		{ label: "Started", cell: s => time(s.createdAt) },
		{ label: "Last used", cell: s => time(s.lastUsedAt) },
		{ label: "Session id", cell: s => <code>{s.sid}</code> }
	];
	if (access.can("sessions", "end"))
		columns.push({
			label: "",
			cell: s => (
				<button
					type="button"
					class="danger"
					data-action="end-session"
					disabled={end.busy}
					onClick={() => end.run(() => api("DELETE", `/api/v1/admin/users/${userId}/sessions/${s.sid}`)).then(sessions.reload)}
				>
					End
				</button>
			)
		});
	return (
		<Panel title="Sessions" id="sessions">
			<Show loaded={sessions} what="Sessions">
				{list => <Table name="sessions" rows={list} rowKey={s => s.sid} columns={columns} empty="No live session." />}
			</Show>
			<Failure error={end.error} />
		</Panel>
	);
}
