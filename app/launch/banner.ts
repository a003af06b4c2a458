import { CLIENT_TYPES } from "../../regions/region.ts";
import type { RegionNode } from "../node.ts";
import { ADMIN_PASSWORD_ENV, FIRST_ADMIN } from "./first-admin.ts";

/**
 * What `npm start` prints once every region is up: where each one is and commands that work as
 * printed; and, on the start that created it, the first administrator (a generated password only here).
 */
export function banner(
	unordered: RegionNode[],
	readyMs: number,
	storage: string,
	ops: { token: string } | { tokenFile: string },
	admin?: { username: string; region: string; generatedPassword?: string },
	repl = false
): string {
	// Regions are numbered by their port block (cn-east 81xx, ap-south 82xx, …): list them that way.
	const nodes = [...unordered].sort((a, b) => a.region.ports.metrics - b.region.ports.metrics);
	const lines = [``, `edgehome — ${nodes.length} regions embedded in one process (ready in ${(readyMs / 1000).toFixed(1)} s, data: ${storage})`, ``];
	for (const { region, broker } of nodes) {
		const ops = `http://127.0.0.1:${region.ports.metrics}`;
		lines.push(
			`  ${region.id.padEnd(11)} ${region.name} · countries ${region.countries.slice(0, 6).join(" ")}${region.countries.length > 6 ? " …" : ""}`,
			`              services: ${broker.services
				.map(s => s.fullName)
				.filter(n => !n.startsWith("$"))
				.join(", ")}`,
			`              ops: ${ops}/healthz  ${ops}/readyz  ${ops}/metrics`,
			`              REST: ${CLIENT_TYPES.map(c => `${c} http://127.0.0.1:${region.ports[c]}`).join(" · ")}  (each: /docs, /api/v1/openapi.json)`
		);
	}
	const first = nodes[0]!.region.ports.metrics;
	const www = `http://127.0.0.1:${nodes[0]!.region.ports.www}`;
	if (admin)
		lines.push(
			``,
			`First administrator: ${admin.username} (home ${admin.region}), password ${admin.generatedPassword ? `${admin.generatedPassword}  <- shown this once, keep it` : `from ${ADMIN_PASSWORD_ENV}`}`
		);
	lines.push(
		``,
		`Try:`,
		`  curl -s -X POST ${www}/api/v1/auth/register -H 'content-type: application/json' -d '{"username":"ann","password":"correct horse 1","country":"DE"}'`,
		`  TOKEN=$(curl -s -X POST ${www}/api/v1/auth/login -H 'content-type: application/json' -d '{"login":"ann","password":"correct horse 1"}' | sed -E 's/.*"accessToken":"([^"]+)".*/\\1/')`,
		`  curl -s ${www}/api/v1/me -H "authorization: Bearer $TOKEN"     # served by eu-central, asked at ${nodes[0]!.region.id}`,
		`  OPS="authorization: Bearer ${"token" in ops ? ops.token : `$(cat ${ops.tokenFile})`}"     # the ops port's token (EDGEHOME_OPS_TOKEN)`,
		`  curl -s -H "$OPS" http://127.0.0.1:${first}/readyz`,
		`  curl -s -H "$OPS" http://127.0.0.1:${first}/metrics | grep edgehome_http_requests_total`,
		``,
		repl
			? `Console on ${FIRST_ADMIN.region} below: \`help\`, \`region status\`, \`call sv-region.regions\`; \`quit\` (or Ctrl-D) stops every region cleanly.`
			: `Ctrl-C stops every region cleanly. \`npm start -- --repl\` adds a console on these regions.`,
		``
	);
	return lines.join("\n");
}
