import { api } from "../api.ts";
import type { Census, Region, RegionNodes } from "../types.ts";
import { Badge, Panel, Show, Table, useLoad } from "../ui.tsx";

const STATUS_KIND = { up: "ok", down: "danger", unknown: "warn" } as const;

/** Every region: reachable or not from here, its users, its countries and residency pins, and its nodes. */
export function RegionsPage() {
	const regions = useLoad(() => api<Region[]>("GET", "/api/v1/admin/regions"), []);
	const census = useLoad(() => api<Census>("GET", "/api/v1/admin/regions/users"), []);
	return (
		<>
			<h1>Regions</h1>
			<Panel title="Status" id="region-status">
				<Show loaded={regions} what="Region status">
					{list => (
						<Table
							name="regions"
							rows={list}
							rowKey={r => r.id}
							empty="No region is defined."
							columns={[
								{ label: "Region", cell: r => r.id },
								{ label: "Name", cell: r => r.name },
								{ label: "Status", cell: r => <Badge kind={STATUS_KIND[r.status]}>{r.status}</Badge> },
								{ label: "Users", num: true, field: "users", cell: r => (census.data ? (census.data.users[r.id] ?? 0) : "…") },
								{ label: "Countries", wrap: true, cell: r => r.countries.join(" ") },
								{ label: "Residency pins", wrap: true, cell: r => r.residency.join(" ") || "—" }
							]}
						/>
					)}
				</Show>
				<Show loaded={census} what="The user count">
					{c => (
						<p class="muted">
							{c.total}
							{c.complete ? "" : "+"} users in all, counted from the directory.
						</p>
					)}
				</Show>
			</Panel>
			<Show loaded={regions} what="Region nodes">
				{list => list.map(r => <Nodes key={r.id} region={r.id} />)}
			</Show>
		</>
	);
}

function Nodes({ region }: { region: string }) {
	const nodes = useLoad(() => api<RegionNodes>("GET", `/api/v1/admin/regions/${region}/nodes`), [region]);
	return (
		<Panel title={`Nodes of ${region}`} id={`nodes-${region}`}>
			<Show loaded={nodes} what="The node list">
				{n => (
					<Table
						name="nodes"
						rows={n.nodes}
						rowKey={node => node.id}
						empty={`No node of ${region} is heard from here.`}
						columns={[
							{ label: "Node", cell: node => <code>{node.id}</code> },
							{ label: "Group", cell: node => node.group ?? "—" },
							{ label: "Services", wrap: true, cell: node => node.services.join(", ") }
						]}
					/>
				)}
			</Show>
		</Panel>
	);
}
