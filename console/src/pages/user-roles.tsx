import { useState } from "preact/hooks";
import { useAccess } from "../access.ts";
import { api } from "../api.ts";
import type { Roles, StaffUser } from "../types.ts";
import { Badge, Failure, Panel, Show, useAction, useLoad } from "../ui.tsx";

/** Everyone holds it without a grant: it is neither granted nor revoked. */
const IMPLICIT_ROLE = "user";

/** The roles a user acts with; for those who manage roles, the grants themselves, to revoke, and the other roles, to grant. */
export function UserRoles({ user, changed }: { user: StaffUser; changed(): void }) {
	const access = useAccess();
	return (
		<Panel title="Roles" id="roles">
			<p data-roles>
				{user.roles.map(r => (
					<Badge key={r} kind="role">
						{r}
					</Badge>
				))}
			</p>
			{access.can("roles", "read") ? <Grants userId={user.id} changed={changed} mayChange={access.can("roles", "write")} /> : null}
		</Panel>
	);
}

function Grants({ userId, changed, mayChange }: { userId: string; changed(): void; mayChange: boolean }) {
	const grants = useLoad(
		() =>
			Promise.all([
				api<{ direct: string[] }>("GET", `/api/v1/admin/users/${userId}/roles`),
				mayChange ? api<Roles>("GET", "/api/v1/admin/roles") : Promise.resolve({ roles: [] })
			]),
		[userId, mayChange]
	);
	const action = useAction();
	const [role, setRole] = useState("");
	const after = (ok: boolean) => {
		if (!ok) return;
		grants.reload();
		changed();
	};
	return (
		<Show loaded={grants} what="Role grants">
			{([held, all]) => {
				const grantable = all.roles.map(r => r.role).filter(r => r !== IMPLICIT_ROLE && !held.direct.includes(r));
				return (
					<>
						<h3>Granted</h3>
						{held.direct.length === 0 ? <p class="muted">No role granted.</p> : null}
						<ul class="grants">
							{held.direct.map(r => (
								<li key={r}>
									{r}
									{mayChange ? (
										<button
											type="button"
											class="danger small"
											data-action="revoke-role"
											disabled={action.busy}
											onClick={() => action.run(() => api("DELETE", `/api/v1/admin/users/${userId}/roles/${r}`)).then(after)}
										>
											Revoke
										</button>
									) : null}
								</li>
							))}
						</ul>
						{mayChange && grantable.length ? (
							<form
								class="inline"
								onSubmit={e => {
									e.preventDefault();
									const chosen = role || grantable[0]!;
									action.run(() => api("PUT", `/api/v1/admin/users/${userId}/roles/${chosen}`)).then(after);
								}}
							>
								<label>
									Role
									<select name="role" value={role || grantable[0]} onChange={e => setRole(e.currentTarget.value)}>
										{grantable.map(r => (
											<option key={r} value={r}>
												{r}
											</option>
										))}
									</select>
								</label>
								<button type="submit" data-action="grant-role" disabled={action.busy}>
									Grant
								</button>
							</form>
						) : null}
						<Failure error={action.error} />
					</>
				);
			}}
		</Show>
	);
}
