import { useState } from "preact/hooks";
import { api, withQuery } from "../api.ts";
import { AuditTable } from "../audit-table.tsx";
import { RegionSelect } from "../regions.tsx";
import { navigate } from "../route.ts";
import type { AuditPage as Page } from "../types.ts";
import { Pager, Panel, Show, useCursors, useLoad } from "../ui.tsx";

const PAGE = 50;

interface Filter {
	actor: string;
	target: string;
	action: string;
	region: string;
}

/** The audit log of every region (or one), merged by time, filtered as the API filters it. */
export function AuditPage({ filter }: { filter: Filter }) {
	const [draft, setDraft] = useState(filter);
	const pages = useCursors();
	const page = useLoad(
		() =>
			api<Page>(
				"GET",
				withQuery("/api/v1/admin/audit", {
					actor: filter.actor,
					target: filter.target,
					action: filter.action,
					region: filter.region,
					cursor: pages.cursor,
					limit: PAGE
				})
			),
		[filter.actor, filter.target, filter.action, filter.region, pages.cursor]
	);
	const field = (key: keyof Filter, label: string, placeholder: string) => (
		<label>
			{label}
			<input name={key} placeholder={placeholder} value={draft[key]} onInput={e => setDraft({ ...draft, [key]: e.currentTarget.value.trim() })} />
		</label>
	);
	return (
		<>
			<h1>Audit log</h1>
			<form
				class="inline"
				onSubmit={e => {
					e.preventDefault();
					navigate({ page: "audit", ...draft });
				}}
			>
				{field("actor", "Actor", "user id, operator:…")}
				{field("target", "Target", "user id, role, move id")}
				{field("action", "Action", "e.g. auth.login")}
				<RegionSelect name="region" value={draft.region} any="every region" onChange={id => setDraft({ ...draft, region: id })} />
				<button type="submit">Filter</button>
			</form>
			<Panel title="Records" id="audit">
				<Show loaded={page} what="The audit log">
					{p => (
						<>
							{p.unavailable.length ? <p class="failure">Not heard from: {p.unavailable.join(", ")}. Their records are missing here.</p> : null}
							<AuditTable records={p.items} />
							<Pager pages={pages} next={p.nextCursor} />
						</>
					)}
				</Show>
			</Panel>
		</>
	);
}
