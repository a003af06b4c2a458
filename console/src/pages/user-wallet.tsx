import { useState } from "preact/hooks";
import { useAccess } from "../access.ts";
import { api, withQuery } from "../api.ts";
import type { EntryPage, Wallet } from "../types.ts";
import { Badge, Failure, money, Pager, Panel, Show, Table, time, useAction, useCursors, useLoad } from "../ui.tsx";

const ENTRIES_PAGE = 20;

export function UserWallet({ userId }: { userId: string }) {
	const access = useAccess();
	const wallet = useLoad(() => api<Wallet>("GET", `/api/v1/admin/users/${userId}/wallet`), [userId]);
	const [version, setVersion] = useState(0);
	const changed = () => {
		wallet.reload();
		setVersion(v => v + 1);
	};
	return (
		<Panel title="Wallet" id="wallet">
			<Show loaded={wallet} what="The wallet">
				{w => (
					<>
						<p>{w.frozen ? <Badge kind="danger">frozen</Badge> : <Badge kind="ok">active</Badge>}</p>
						<Table
							name="balances"
							rows={w.balances}
							rowKey={b => b.currency}
							columns={[
								{ label: "Currency", cell: b => b.currency },
								{ label: "Balance", num: true, cell: b => money(b.balance, b.currency) },
								{ label: "Held", num: true, cell: b => money(b.pending, b.currency) },
								{ label: "Available", num: true, cell: b => money(b.available, b.currency) }
							]}
							empty="No balance yet."
						/>
						{access.can("wallet", "adjust") ? <Adjust userId={userId} currency={w.balances[0]?.currency ?? ""} changed={changed} /> : null}
						{access.can("wallet", "freeze") ? <Freeze userId={userId} frozen={w.frozen} changed={changed} /> : null}
					</>
				)}
			</Show>
			<Entries userId={userId} version={version} />
		</Panel>
	);
}

/** The newest entries, and older pages on demand. */
function Entries({ userId, version }: { userId: string; version: number }) {
	const pages = useCursors();
	const page = useLoad(
		() => api<EntryPage>("GET", withQuery(`/api/v1/admin/users/${userId}/wallet/entries`, { limit: ENTRIES_PAGE, cursor: pages.cursor })),
		[userId, pages.cursor, version]
	);
	return (
		<>
			<h3>Entries</h3>
			<Show loaded={page} what="Wallet entries">
				{p => (
					<>
						<Table
							name="entries"
							rows={p.items}
							rowKey={e => e.id}
							columns={[
								{ label: "When", cell: e => time(e.createdAt) },
								{ label: "Kind", cell: e => e.kind },
								{ label: "Amount", num: true, cell: e => money(e.amount, e.currency) },
								{ label: "Counterparty", cell: e => e.counterparty ?? "—" },
								{ label: "Memo", cell: e => e.memo ?? "—" }
							]}
							empty="No entry."
						/>
						<Pager pages={pages} next={p.nextCursor} />
					</>
				)}
			</Show>
		</>
	);
}

/** Credits or debits the wallet; the currency starts as the wallet's first. */
function Adjust({ userId, currency: first, changed }: { userId: string; currency: string; changed(): void }) {
	const [amount, setAmount] = useState("");
	const [currency, setCurrency] = useState(first);
	const [reason, setReason] = useState("");
	const action = useAction();
	return (
		<form
			class="inline"
			data-form="adjust"
			onSubmit={e => {
				e.preventDefault();
				action
					.run(() =>
						api("POST", `/api/v1/admin/users/${userId}/wallet/adjustments`, { amount: amount.trim(), currency: currency.trim().toUpperCase(), reason })
					)
					.then(ok => {
						if (!ok) return;
						setAmount("");
						setReason("");
						changed();
					});
			}}
		>
			<label>
				Amount (minor units; negative debits)
				<input name="amount" required inputMode="numeric" pattern="-?[0-9]+" value={amount} onInput={e => setAmount(e.currentTarget.value)} />
			</label>
			<label>
				Currency
				<input name="currency" required size={4} maxLength={3} value={currency} onInput={e => setCurrency(e.currentTarget.value)} />
			</label>
			<label>
				Reason
				<input name="reason" required maxLength={200} value={reason} onInput={e => setReason(e.currentTarget.value)} />
			</label>
			<button type="submit" data-action="adjust" disabled={action.busy}>
				Adjust
			</button>
			<Failure error={action.error} />
		</form>
	);
}

function Freeze({ userId, frozen, changed }: { userId: string; frozen: boolean; changed(): void }) {
	const [reason, setReason] = useState("");
	const action = useAction();
	const path = `/api/v1/admin/users/${userId}/wallet/${frozen ? "unfreeze" : "freeze"}`;
	return (
		<form
			class="inline"
			data-form="freeze"
			onSubmit={e => {
				e.preventDefault();
				action.run(() => api("POST", path, frozen || !reason ? {} : { reason })).then(ok => ok && changed());
			}}
		>
			{frozen ? null : (
				<label>
					Why
					<input name="freeze-reason" maxLength={200} value={reason} onInput={e => setReason(e.currentTarget.value)} />
				</label>
			)}
			<button type="submit" class={frozen ? "" : "danger"} data-action={frozen ? "unfreeze" : "freeze"} disabled={action.busy}>
				{frozen ? "Unfreeze" : "Freeze"}
			</button>
			<Failure error={action.error} />
		</form>
	);
}
