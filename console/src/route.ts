import { useEffect, useState } from "preact/hooks";

/**
 * The console's pages by the URL's fragment (`/console#/users/<id>`): the gateway serves one page at
 * one path, and a reload or a shared link opens the same view.
 */
export type Route =
	| { page: "users"; q: string }
	| { page: "user"; id: string }
	| { page: "regions" }
	| { page: "dead-letters"; region: string }
	| { page: "audit"; actor: string; target: string; action: string; region: string };

export function parseRoute(hash: string): Route {
	const [path = "", search = ""] = hash.replace(/^#/, "").split("?");
	const query = new URLSearchParams(search);
	const value = (key: string) => query.get(key) ?? "";
	const parts = path.split("/").filter(Boolean);
	if (parts[0] === "users" && parts[1]) return { page: "user", id: decodeURIComponent(parts[1]) };
	if (parts[0] === "regions") return { page: "regions" };
	if (parts[0] === "dead-letters") return { page: "dead-letters", region: value("region") };
	if (parts[0] === "audit") return { page: "audit", actor: value("actor"), target: value("target"), action: value("action"), region: value("region") };
	return { page: "users", q: value("q") };
}

/** The fragment that opens `route` (keys without a value left out). */
export function href(route: Route): string {
	const { page, ...rest } = route;
	if (route.page === "user") return `#/users/${encodeURIComponent(route.id)}`;
	const query = new URLSearchParams(Object.entries(rest).filter(([, v]) => v !== "") as [string, string][]).toString();
	return `#/${page}${query ? `?${query}` : ""}`;
}

export function navigate(route: Route): void {
	location.hash = href(route);
}

export function useRoute(): Route {
	const [route, setRoute] = useState(() => parseRoute(location.hash));
	useEffect(() => {
		const changed = () => setRoute(parseRoute(location.hash));
		addEventListener("hashchange", changed);
		return () => removeEventListener("hashchange", changed);
	}, []);
	return route;
}
