import { useAccess } from "../access.ts";
import { api } from "../api.ts";
import type { StaffUser } from "../types.ts";
import { Badge, Panel, Show, time, useLoad } from "../ui.tsx";
import { UserAudit } from "./user-audit.tsx";
import { UserFiles } from "./user-files.tsx";
import { UserMove } from "./user-move.tsx";
import { UserRoles } from "./user-roles.tsx";
import { UserSessions } from "./user-sessions.tsx";
import { UserWallet } from "./user-wallet.tsx";

/** One user: where they live and everything staff may see or do about them, each part shown to those allowed it. */
export function UserPage({ id }: { id: string }) {
	const access = useAccess();
	const user = useLoad(() => api<StaffUser>("GET", `/api/v1/admin/users/${encodeURIComponent(id)}`), [id]);
	return (
		<Show loaded={user} what="This user">
			{u => (
				<>
					<h1>
						{u.username} {u.state === "moving" ? <Badge kind="warn">moving</Badge> : null}
					</h1>
					<Panel title="Profile and home" id="profile">
						<dl class="facts">
							<dt>User id</dt>
							<dd>
								<code>{u.id}</code>
							</dd>
							<dt>Home region</dt>
							<dd data-field="region">{u.region}</dd>
							<dt>Epoch</dt>
							<dd>{u.epoch}</dd>
							<dt>E-mail</dt>
							<dd>{u.email ?? "—"}</dd>
							<dt>Phone</dt>
							<dd>{u.phone ?? "—"}</dd>
							<dt>Country</dt>
							<dd>{u.country ?? "—"}</dd>
							<dt>Registered</dt>
							<dd>{time(u.createdAt)}</dd>
						</dl>
					</Panel>
					{access.can("users", "move") ? <UserMove user={u} moved={user.reload} /> : null}
					<UserSessions userId={u.id} />
					<UserRoles user={u} changed={user.reload} />
					{access.can("wallet", "read") ? <UserWallet userId={u.id} /> : null}
					{access.can("files", "read") ? <UserFiles userId={u.id} /> : null}
					{access.can("audit", "read") ? <UserAudit userId={u.id} /> : null}
				</>
			)}
		</Show>
	);
}
