import { useState } from "preact/hooks";
import { api, withQuery } from "../api.ts";
import { regionList } from "../regions.tsx";
import { href, navigate } from "../route.ts";
import type { UserPage } from "../types.ts";
import { Failure, Panel, Show, Table, time, useLoad } from "../ui.tsx";

/** Results per region; a user is found by username prefix, or by exact e-mail or phone. */
const PAGE_SIZE = 20;

interface RegionResult {
	region: string;
	page?: UserPage;
	error?: unknown;
}

/** One search in every region at once: each region lists its own users, and a region that fails says so without hiding the others. */
async function searchEverywhere(q: string): Promise<RegionResult[]> {
	const regions = await regionList();
	return Promise.all(
		regions.map(({ id }) =>
			api<UserPage>("GET", withQuery("/api/v1/admin/users", { region: id, q, pageSize: PAGE_SIZE })).then(
				page => ({ region: id, page }),
				error => ({ region: id, error })
			)
		)
	);
}

export function UsersPage({ q }: { q: string }) {
	const [text, setText] = useState(q);
	const results = useLoad(() => searchEverywhere(q), [q]);
	return (
		<>
			<h1>Users</h1>
			<form
				class="search"
				onSubmit={e => {
					e.preventDefault();
					navigate({ page: "users", q: text.trim() });
				}}
			>
				<label>
					Search every region
					<input name="q" placeholder="username prefix, e-mail or phone" value={text} onInput={e => setText(e.currentTarget.value)} />
				</label>
				<button type="submit">Search</button>
			</form>
			<Panel title={q ? `Users matching “${q}”` : "Users"} id="results">
				<Show loaded={results} what="User search">
					{regions => <Results regions={regions} />}
				</Show>
			</Panel>
		</>
	);
}

function Results({ regions }: { regions: RegionResult[] }) {
	const rows = regions.flatMap(r => r.page?.items ?? []);
	return (
		<>
			<p class="muted" data-counts>
				{regions.map(r => (r.page ? `${r.region}: ${r.page.total}` : `${r.region}: unavailable`)).join(" · ")}
			</p>
			{regions.map(r => (r.error === undefined ? null : <Failure key={r.region} error={r.error} />))}
			<Table
				name="users"
				rows={rows}
				rowKey={u => u.id}
				columns={[
					{ label: "Username", cell: u => <a href={href({ page: "user", id: u.id })}>{u.username}</a> },
					{ label: "Home region", cell: u => u.region },
					{ label: "E-mail", cell: u => u.email ?? "—" },
					{ label: "Phone", cell: u => u.phone ?? "—" },
					{ label: "Country", cell: u => u.country ?? "—" },
					{ label: "Registered", cell: u => time(u.createdAt) }
				]}
				empty="No user found."
			/>
		</>
	);
}
