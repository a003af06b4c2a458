import { api, withQuery } from "../api.ts";
import { RegionSelect } from "../regions.tsx";
import { href, navigate } from "../route.ts";
import type { DeadLetters } from "../types.ts";
import { Failure, Panel, Show, Table, time, useAction, useLoad } from "../ui.tsx";

const PAGE = 50;

type Letter = DeadLetters["items"][number];

/** The notice e-mails and webhooks given up on in one region, each one replayable. */
export function DeadLettersPage({ region }: { region: string }) {
	const letters = useLoad(
		() => api<DeadLetters>("GET", withQuery("/api/v1/admin/notices/dead-letters", { region: region || undefined, limit: PAGE })),
		[region]
	);
	const replay = useAction();
	const replayButton = (where: string) => (l: Letter) => (
		<button
			type="button"
			data-action="replay"
			disabled={replay.busy}
			onClick={() => replay.run(() => api("POST", `/api/v1/admin/notices/dead-letters/${l.id}/replay`, { region: where })).then(letters.reload)}
		>
			Replay
		</button>
	);
	return (
		<>
			<h1>Dead letters</h1>
			<div class="inline">
				<RegionSelect name="region" value={region || (letters.data?.region ?? "")} onChange={id => navigate({ page: "dead-letters", region: id })} />
			</div>
			<Panel title={`Notices given up on${letters.data ? ` in ${letters.data.region}` : ""}`} id="dead-letters">
				<Show loaded={letters} what="Dead letters">
					{d => (
						<Table
							name="dead-letters"
							rows={d.items}
							rowKey={l => l.id}
							empty={`No dead letter in ${d.region}.`}
							columns={[
								{ label: "Given up", cell: l => time(l.at) },
								{ label: "Channel", cell: l => l.channel },
								{ label: "User", cell: l => <a href={href({ page: "user", id: l.userId })}>{l.userId}</a> },
								{ label: "Notice", cell: l => l.title },
								{ label: "Attempts", num: true, cell: l => l.attempts },
								{
									label: "Last error",
									wrap: true,
									cell: l => (
										<>
											{l.errorType ? <code>{l.errorType}</code> : null} {l.error}
										</>
									)
								},
								{ label: "", cell: replayButton(d.region) }
							]}
						/>
					)}
				</Show>
				<Failure error={replay.error} />
			</Panel>
		</>
	);
}
