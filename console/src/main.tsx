import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import type { Access } from "./access.ts";
import { AccessContext, loadAccess } from "./access.ts";
import { logOut, onSessionChange, signedIn } from "./api.ts";
import { AuditPage } from "./pages/audit.tsx";
import { DeadLettersPage } from "./pages/dead-letters.tsx";
import { LoginPage } from "./pages/login.tsx";
import { RegionsPage } from "./pages/regions.tsx";
import { UserPage } from "./pages/user.tsx";
import { UsersPage } from "./pages/users.tsx";
import type { Route } from "./route.ts";
import { href, useRoute } from "./route.ts";
import { Failure } from "./ui.tsx";
import "./console.css";

/** The pages in the navigation, each shown to those who hold the permission it starts from. */
const NAV: { label: string; route: Route; needs: [string, string] }[] = [
	{ label: "Users", route: { page: "users", q: "" }, needs: ["users", "read"] },
	{ label: "Regions", route: { page: "regions" }, needs: ["regions", "read"] },
	{ label: "Dead letters", route: { page: "dead-letters", region: "" }, needs: ["notices", "dlq"] },
	{ label: "Audit log", route: { page: "audit", actor: "", target: "", action: "", region: "" }, needs: ["audit", "read"] }
];

/** A page starts afresh for each URL (its forms and pages of results belong to what it shows). */
function Page({ route }: { route: Route }) {
	switch (route.page) {
		case "users":
			return <UsersPage key={href(route)} q={route.q} />;
		case "user":
			return <UserPage key={href(route)} id={route.id} />;
		case "regions":
			return <RegionsPage />;
		case "dead-letters":
			return <DeadLettersPage key={href(route)} region={route.region} />;
		case "audit":
			return <AuditPage key={href(route)} filter={route} />;
	}
}

function Shell({ access }: { access: Access }) {
	const route = useRoute();
	const current = route.page === "user" ? "users" : route.page;
	const nav = NAV.filter(n => access.can(...n.needs));
	return (
		<div class="shell">
			<nav class="sidebar" aria-label="Console">
				<div class="brand">edgehome</div>
				<ul>
					{nav.map(n => (
						<li key={n.label}>
							<a href={href(n.route)} aria-current={n.route.page === current ? "page" : undefined} data-nav={n.route.page}>
								{n.label}
							</a>
						</li>
					))}
				</ul>
				<div class="whoami">
					<span>{access.roles.filter(r => r !== "user").join(", ") || "user"}</span>
					<button type="button" class="link" onClick={() => logOut()}>
						Log out
					</button>
				</div>
			</nav>
			<main>
				{access.isStaff ? (
					<Page route={route} />
				) : (
					<p class="failure" role="alert">
						This account holds no staff permission: there is nothing for it here.
					</p>
				)}
			</main>
		</div>
	);
}

function App() {
	const [session, setSession] = useState(signedIn());
	const [access, setAccess] = useState<Access | null>(null);
	const [error, setError] = useState<unknown>(undefined);
	useEffect(() => onSessionChange(() => setSession(signedIn())), []);
	useEffect(() => {
		setAccess(null);
		setError(undefined);
		if (session) loadAccess().then(setAccess, setError);
	}, [session]);
	if (!session) return <LoginPage />;
	if (error !== undefined)
		return (
			<main class="centered">
				<Failure error={error} />
				<button type="button" onClick={() => logOut()}>
					Log out
				</button>
			</main>
		);
	if (!access) return <p class="muted centered">Loading…</p>;
	return (
		<AccessContext.Provider value={access}>
			<Shell access={access} />
		</AccessContext.Provider>
	);
}

render(<App />, document.getElementById("app")!);
