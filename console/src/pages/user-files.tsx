import { api, withQuery } from "../api.ts";
import type { FilePage } from "../types.ts";
import { Panel, Show, Table, time, useLoad } from "../ui.tsx";

const FILES_PAGE = 20;

export function bytes(n: number): string {
	if (n < 1024) return `${n} B`;
	const units = ["KiB", "MiB", "GiB", "TiB"];
	let value = n / 1024;
	let unit = 0;
	for (; value >= 1024 && unit < units.length - 1; unit++) value /= 1024;
	return `${value.toFixed(1)} ${units[unit]}`;
}

export function UserFiles({ userId }: { userId: string }) {
	const files = useLoad(() => api<FilePage>("GET", withQuery(`/api/v1/admin/users/${userId}/files`, { limit: FILES_PAGE })), [userId]);
	return (
		<Panel title="Files" id="files">
			<Show loaded={files} what="Files">
				{f => (
					<>
						<p class="muted" data-usage>
							{f.usage.files} file(s), {bytes(f.usage.usedBytes)} of {bytes(f.usage.quotaBytes)} used
						</p>
						<Table
							name="files"
							rows={f.items}
							rowKey={file => file.id}
							columns={[
								{ label: "Name", cell: file => file.name },
								{ label: "Type", cell: file => file.contentType },
								{ label: "Size", num: true, cell: file => bytes(file.size) },
								{ label: "Uploaded", cell: file => time(file.createdAt) }
							]}
							empty="No file."
						/>
					</>
				)}
			</Show>
		</Panel>
	);
}
