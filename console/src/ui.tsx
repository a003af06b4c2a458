import type { ComponentChildren } from "preact";
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { ApiError } from "./api.ts";

/** The small parts every page is made of. */

export interface Loaded<T> {
	data: T | undefined;
	error: unknown;
	loading: boolean;
	reload(): void;
}

/** Runs `load` now and whenever `deps` change; an answer that arrives after a newer request is dropped. */
export function useLoad<T>(load: () => Promise<T>, deps: readonly unknown[]): Loaded<T> {
	const [state, setState] = useState<{ data?: T; error?: unknown; loading: boolean }>({ loading: true });
	const latest = useRef(0);
	// The caller names what `load` depends on.
	const reload = useCallback(() => {
		const run = ++latest.current;
		setState(s => ({ ...s, loading: true }));
		load().then(
			data => run === latest.current && setState({ data, loading: false }),
			error => run === latest.current && setState({ error, loading: false })
		);
	}, deps);
	useEffect(reload, [reload]);
	return { data: state.data, error: state.error, loading: state.loading, reload };
}

/** Runs one action of a control (a button, a form): busy while it runs, its failure shown beside it. */
export function useAction(): { busy: boolean; error: unknown; run(action: () => Promise<unknown>): Promise<boolean> } {
	const [busy, setBusy] = useState(false);
	const [error, setError] = useState<unknown>(undefined);
	const run = async (action: () => Promise<unknown>) => {
		setBusy(true);
		setError(undefined);
		try {
			await action();
			return true;
		} catch (err) {
			setError(err);
			return false;
		} finally {
			setBusy(false);
		}
	};
	return { busy, error, run };
}

/** The route is missing (an older gateway) or its service is not running: the feature is not there, nothing failed. */
export function isUnavailable(error: unknown): boolean {
	return error instanceof ApiError && ((error.status === 404 && error.code === "NOT_FOUND") || error.code === "SERVICE_NOT_AVAILABLE");
}

export function Failure({ error }: { error: unknown }) {
	if (error === undefined) return null;
	const e = error instanceof ApiError ? error : undefined;
	const fields = e?.details.filter(d => d.message).map(d => d.message);
	return (
		<p class="failure" role="alert">
			<strong>{e ? e.code : "ERROR"}</strong> {e ? e.message : String((error as Error)?.message ?? error)}
			{fields?.length ? `: ${fields.join("; ")}` : ""}
		</p>
	);
}

/** A section's loading, failure or unavailable state, else its content. */
export function Show<T>({ loaded, what, children }: { loaded: Loaded<T>; what: string; children: (data: T) => ComponentChildren }) {
	if (loaded.error !== undefined && isUnavailable(loaded.error))
		return (
			<p class="unavailable" data-state="unavailable">
				{what} is not available on this gateway.
			</p>
		);
	if (loaded.error !== undefined) return <Failure error={loaded.error} />;
	if (loaded.data === undefined) return <p class="muted">Loading…</p>;
	return <>{children(loaded.data)}</>;
}

export function Panel({ title, id, children, actions }: { title: string; id: string; children: ComponentChildren; actions?: ComponentChildren }) {
	return (
		<section class="panel" id={id} aria-labelledby={`${id}-title`}>
			<header>
				<h2 id={`${id}-title`}>{title}</h2>
				{actions}
			</header>
			{children}
		</section>
	);
}

export function Empty({ children }: { children: ComponentChildren }) {
	return <p class="muted empty">{children}</p>;
}

export function time(iso: string | number | null | undefined): string {
	if (iso === null || iso === undefined) return "—";
	const d = new Date(iso);
	return Number.isNaN(d.getTime())
		? String(iso)
		: d
				.toISOString()
				.replace("T", " ")
				.replace(/\.\d+Z$/, " UTC");
}

/** Minor units as the currency writes them (JPY 500 → "500", USD 500 → "5.00"), with its code. */
export function money(minor: string, currency: string): string {
	let digits = 2;
	try {
		digits = new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions().maximumFractionDigits ?? 2;
	} catch {
		// An unknown code: shown with two decimals.
	}
	const negative = minor.startsWith("-");
	const units = (negative ? minor.slice(1) : minor).padStart(digits + 1, "0");
	const whole = digits ? `${units.slice(0, -digits)}.${units.slice(-digits)}` : units;
	return `${negative ? "−" : ""}${whole} ${currency}`;
}

export interface Column<T> {
	label: string;
	cell(row: T): ComponentChildren;
	/** Right-aligned figures. */
	num?: true;
	/** Long text that wraps (the others keep to one line). */
	wrap?: true;
	/** Names the cell for a test or a style: `data-field`. */
	field?: string;
}

/** A table of `rows`, one column per entry, each row `data-key` = `rowKey(row)`; without rows, what `empty` says. */
export function Table<T>(props: { name: string; columns: Column<T>[]; rows: T[]; rowKey(row: T): string; empty: string }) {
	const { name, columns, rows, rowKey } = props;
	if (rows.length === 0) return <Empty>{props.empty}</Empty>;
	const classOf = (c: Column<T>) => [c.num ? "num" : "", c.wrap ? "wrap" : ""].join(" ").trim() || undefined;
	return (
		<table data-table={name}>
			<thead>
				<tr>
					{columns.map((c, i) => (
						<th key={`${i}-${c.label}`} class={classOf(c)}>
							{c.label}
						</th>
					))}
				</tr>
			</thead>
			<tbody>
				{rows.map(row => (
					<tr key={rowKey(row)} data-key={rowKey(row)}>
						{columns.map((c, i) => (
							<td key={`${i}-${c.label}`} class={classOf(c)} data-field={c.field}>
								{c.cell(row)}
							</td>
						))}
					</tr>
				))}
			</tbody>
		</table>
	);
}

export interface Cursors {
	/** The page shown: undefined for the first (newest). */
	cursor: string | undefined;
	depth: number;
	back(): void;
	forward(next: string): void;
}

/** Where a cursor-paged list is: the cursors of the pages walked to, the last one shown. */
export function useCursors(): Cursors {
	const [cursors, setCursors] = useState<string[]>([]);
	return {
		cursor: cursors.at(-1),
		depth: cursors.length,
		back: () => setCursors(c => c.slice(0, -1)),
		forward: next => setCursors(c => [...c, next])
	};
}

export function Pager({ pages, next }: { pages: Cursors; next: string | null }) {
	return (
		<div class="pager">
			{pages.depth ? (
				<button type="button" class="link" onClick={pages.back}>
					Newer
				</button>
			) : null}
			{next ? (
				<button type="button" class="link" onClick={() => pages.forward(next)}>
					Older
				</button>
			) : null}
		</div>
	);
}

export function Badge({ kind, children }: { kind: string; children: ComponentChildren }) {
	return <span class={`badge badge-${kind}`}>{children}</span>;
}
