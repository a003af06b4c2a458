/**
 * The console's only way to the cluster: the public REST API of the api-cms gateway it is served
 * by (same origin), with the bearer token of whoever logged in. Tokens live in this tab's
 * sessionStorage: a reload keeps the session, closing the tab ends it.
 */

export interface Tokens {
	accessToken: string;
	refreshToken: string;
}

/** An answer in the API's one error shape: `{"error": {code, message, details?}}`. */
export class ApiError extends Error {
	readonly status: number;
	readonly code: string;
	readonly details: { field?: string; message?: string }[];

	constructor(status: number, code: string, message: string, details: { field?: string; message?: string }[] = []) {
		super(message);
		this.status = status;
		this.code = code;
		this.details = details;
	}
}

const STORAGE_KEY = "edgehome.console.tokens";

let tokens: Tokens | null = stored();
const listeners = new Set<() => void>();
/** One refresh at a time: requests that got 401 together wait for the same one. */
let refreshing: Promise<boolean> | undefined;

function stored(): Tokens | null {
	const text = sessionStorage.getItem(STORAGE_KEY);
	if (!text) return null;
	try {
		return JSON.parse(text) as Tokens;
	} catch {
		return null;
	}
}

function setTokens(next: Tokens | null): void {
	tokens = next;
	if (next) sessionStorage.setItem(STORAGE_KEY, JSON.stringify({ accessToken: next.accessToken, refreshToken: next.refreshToken }));
	else sessionStorage.removeItem(STORAGE_KEY);
	for (const listener of listeners) listener();
}

export const signedIn = (): boolean => tokens !== null;

/** Called whenever the console logs in or out (a refused refresh logs out). */
export function onSessionChange(listener: () => void): () => void {
	listeners.add(listener);
	return () => listeners.delete(listener);
}

function send(method: string, path: string, body?: unknown): Promise<Response> {
	const headers: Record<string, string> = { accept: "application/json" };
	if (tokens) headers.authorization = `Bearer ${tokens.accessToken}`;
	if (body !== undefined) headers["content-type"] = "application/json";
	return fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
}

async function parsed<T>(res: Response): Promise<T> {
	const text = await res.text();
	const body = text ? (JSON.parse(text) as unknown) : null;
	if (res.ok) return body as T;
	const error = (body as { error?: { code?: string; message?: string; details?: { field?: string; message?: string }[] } } | null)?.error;
	throw new ApiError(res.status, error?.code ?? `HTTP_${res.status}`, error?.message ?? res.statusText, error?.details);
}

function refresh(): Promise<boolean> {
	const current = tokens;
	if (!current) return Promise.resolve(false);
	refreshing ??= send("POST", "/api/v1/auth/refresh", { refreshToken: current.refreshToken })
		.then(res => parsed<Tokens>(res))
		.then(
			next => {
				setTokens(next);
				return true;
			},
			() => {
				setTokens(null);
				return false;
			}
		)
		.finally(() => {
			refreshing = undefined;
		});
	return refreshing;
}

/** One request; an expired access token is refreshed once, and a refused refresh ends the session. */
export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
	let res = await send(method, path, body);
	if (res.status === 401 && tokens && (await refresh())) res = await send(method, path, body);
	return parsed<T>(res);
}

/** `path?key=value&…`, leaving out the keys without a value. */
export function withQuery(path: string, query: Record<string, string | number | undefined>): string {
	const search = new URLSearchParams();
	for (const [key, value] of Object.entries(query)) if (value !== undefined && value !== "") search.set(key, String(value));
	const text = search.toString();
	return text ? `${path}?${text}` : path;
}

export async function logIn(login: string, password: string): Promise<void> {
	setTokens(await api<Tokens>("POST", "/api/v1/auth/login", { login, password }));
}

export async function logOut(): Promise<void> {
	// The session ends here whatever the server answers (it may have ended it already).
	await api("POST", "/api/v1/auth/logout").catch(() => undefined);
	setTokens(null);
}
