import { useEffect, useState } from "preact/hooks";
import { api } from "../api.ts";
import { useRegions } from "../regions.tsx";
import type { MoveProgress, StaffUser } from "../types.ts";
import { Badge, Failure, Panel, time, useAction } from "../ui.tsx";

/** How often a running move's progress is read. */
const POLL_MS = 500;

const STATE_KIND = { running: "warn", moved: "ok", "rolled-back": "danger", failed: "danger" } as const;

/** Rehome the user to another region, and follow the move until it ends. */
export function UserMove({ user, moved }: { user: StaffUser; moved(): void }) {
	const regions = useRegions();
	const [to, setTo] = useState("");
	const [moveId, setMoveId] = useState<string | null>(null);
	const start = useAction();
	const targets = (regions.data ?? []).filter(r => r.id !== user.region);
	const chosen = to && targets.some(r => r.id === to) ? to : (targets[0]?.id ?? "");
	return (
		<Panel title="Move to another region" id="move">
			<form
				class="inline"
				onSubmit={e => {
					e.preventDefault();
					start.run(async () => setMoveId((await api<MoveProgress>("POST", `/api/v1/admin/users/${user.id}/move`, { region: chosen })).moveId));
				}}
			>
				<label>
					To
					<select name="to" value={chosen} onChange={e => setTo(e.currentTarget.value)}>
						{targets.map(r => (
							<option key={r.id} value={r.id}>
								{r.id} ({r.name}, {r.status})
							</option>
						))}
					</select>
				</label>
				<button type="submit" data-action="move" disabled={start.busy || !chosen || user.state === "moving"}>
					Move
				</button>
			</form>
			<Failure error={start.error} />
			{moveId ? <Progress moveId={moveId} ended={moved} /> : null}
		</Panel>
	);
}

/** The move's progress, read until it is no longer running. */
function Progress({ moveId, ended }: { moveId: string; ended(): void }) {
	const [progress, setProgress] = useState<MoveProgress | null>(null);
	const [error, setError] = useState<unknown>(undefined);
	useEffect(() => {
		let timer: ReturnType<typeof setTimeout> | undefined;
		let stopped = false;
		const poll = () =>
			api<MoveProgress>("GET", `/api/v1/admin/moves/${moveId}`).then(
				p => {
					if (stopped) return;
					setProgress(p);
					if (p.state === "running") timer = setTimeout(poll, POLL_MS);
					else ended();
				},
				err => !stopped && setError(err)
			);
		poll();
		return () => {
			stopped = true;
			clearTimeout(timer);
		};
	}, [moveId, ended]);
	if (error !== undefined) return <Failure error={error} />;
	if (!progress) return <p class="muted">Starting…</p>;
	return (
		<div class="progress" data-move-state={progress.state} aria-live="polite">
			<Badge kind={STATE_KIND[progress.state]}>{progress.state}</Badge> {progress.from} → {progress.to}
			{progress.step ? <span class="muted"> · step {progress.step}</span> : null}
			{progress.finishedAt ? <span class="muted"> · finished {time(progress.finishedAt)}</span> : null}
			{progress.error ? <span class="muted"> · {progress.error}</span> : null}
		</div>
	);
}
