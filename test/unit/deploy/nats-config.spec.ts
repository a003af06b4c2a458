import { spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadRegions } from "../../../regions/loader.ts";
import { makeCertificates, natsPasswords, serverDir } from "../../harness/secure-nats.ts";
import type { NatsMap } from "./nats-conf.ts";
import { isNatsMap, parseNatsConf } from "./nats-conf.ts";
import { composePath, edgeName, hubConfPath, natsConfPath, parseCompose, ROOT, readHubConf, readNatsConf } from "./stack-checks.ts";

/**
 * The NATS servers of the deploy stacks admit only TLS clients that log in as a known role, and
 * only servers with a certificate from the edgehome CA on the hub's routes and leaf-node port (where
 * the certificate also names the region's edge).
 */
const REGION_IDS = loadRegions(join(ROOT, "regions", "definitions")).map(r => r.id);
const NATS_SERVER = process.env.EDGEHOME_TEST_NATS_SERVER ?? "nats-server";
const natsServerRuns = !spawnSync(NATS_SERVER, ["--version"]).error;
const AUTH_CONF = join(ROOT, "deploy", "nats", "auth.conf");
const root = mkdtempSync(join(tmpdir(), "edgehome-nats-config-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const CONFIGS = REGION_IDS.flatMap(id => [
	{ name: `${id}.conf`, id, path: natsConfPath(id) },
	{ name: `hub-${id}.conf`, id, path: hubConfPath(id) }
]);

/** `nats-server -t` on a shipped config, run where the stack runs it: beside auth.conf, with certs/. */
function configTest(config: (typeof CONFIGS)[number], env: Record<string, string>, withCerts = true): { status: number | null; output: string } {
	const dir = withCerts ? serverDir(join(root, `run-${Math.random().toString(36).slice(2)}`), config.id, join(root, "pki")) : mkdtempSync(join(root, "bare-"));
	if (!withCerts) copyFileSync(AUTH_CONF, join(dir, "auth.conf"));
	copyFileSync(config.path, join(dir, "edgehome.conf"));
	const run = spawnSync(NATS_SERVER, ["-t", "-c", join(dir, "edgehome.conf")], { cwd: dir, env: { PATH: process.env.PATH ?? "", ...env }, encoding: "utf8" });
	return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

function tlsOf(block: NatsMap[string] | undefined): NatsMap | undefined {
	return isNatsMap(block) && isNatsMap(block.tls) ? block.tls : undefined;
}

describe.skipIf(!natsServerRuns)("nats-server -t on deploy/nats/<region>.conf and hub-<region>.conf", () => {
	if (natsServerRuns) makeCertificates(join(root, "pki"), REGION_IDS);

	it.each(CONFIGS)("accepts $name with the certificates of make-certs.sh and the two passwords", config => {
		const run = configTest(config, natsPasswords());
		expect(run.status, run.output).toBe(0);
	});

	it.each(CONFIGS)("refuses $name without the passwords: none is written down or defaulted", config => {
		const run = configTest(config, {});
		expect(run.status).not.toBe(0);
		expect(run.output).toMatch(/variable reference for 'NATS_SERVICE_PASSWORD'/);
	});

	it.each(CONFIGS)("refuses $name without its certificates: TLS is not optional", config => {
		const run = configTest(config, natsPasswords(), false);
		expect(run.status).not.toBe(0);
		expect(run.output).toMatch(/certs\/server\.crt/);
	});
});

describe("what the configs declare", () => {
	const auth = parseNatsConf(readFileSync(AUTH_CONF, "utf8"));

	it("clients: TLS, and a password per role (service, ops) from the environment", () => {
		expect(auth.tls).toMatchObject({ cert_file: "certs/server.crt", key_file: "certs/server.key", ca_file: "certs/ca.crt" });
		const users = isNatsMap(auth.authorization) && Array.isArray(auth.authorization.users) ? auth.authorization.users.filter(isNatsMap) : [];
		expect(users.map(u => [u.user, u.password])).toEqual([
			["service", "$NATS_SERVICE_PASSWORD"],
			["ops", "$NATS_OPS_PASSWORD"]
		]);
		const ops = users.find(u => u.user === "ops")!;
		expect(ops.permissions).toMatchObject({
			publish: { deny: expect.arrayContaining(["$JS.>", "$KV.>"]) },
			subscribe: { deny: expect.arrayContaining(["$JS.>", "$KV.>"]) }
		});
	});

	it.each(REGION_IDS)(
		"%s: both servers include the client rules; the hub's routes need a certificate of the CA, its leaf nodes one naming a region's edge",
		id => {
			const edge = readNatsConf(id);
			const hub = readHubConf(id);
			for (const conf of [edge, hub]) expect(conf.include).toBe("auth.conf");
			expect(tlsOf(hub.cluster)).toMatchObject({ cert_file: "certs/server.crt", ca_file: "certs/ca.crt", verify: "true" });
			expect(tlsOf(hub.leafnodes)).toMatchObject({ cert_file: "certs/server.crt", ca_file: "certs/ca.crt", verify_and_map: "true" });
			const leafUsers = isNatsMap(hub.leafnodes) && isNatsMap(hub.leafnodes.authorization) ? hub.leafnodes.authorization.users : [];
			expect(
				Array.isArray(leafUsers) && leafUsers.filter(isNatsMap).every(u => u.password === undefined && REGION_IDS.map(edgeName).includes(String(u.user)))
			).toBe(true);
			const remotes = isNatsMap(edge.leafnodes) && Array.isArray(edge.leafnodes.remotes) ? edge.leafnodes.remotes.filter(isNatsMap) : [];
			expect(remotes.map(r => r.tls)).toEqual([
				expect.objectContaining({ cert_file: "certs/server.crt", key_file: "certs/server.key", ca_file: "certs/ca.crt" })
			]);
		}
	);

	it.each(REGION_IDS)("%s's stack gives the server its passwords and certificates, and every group its login, CA and capability keys", id => {
		const compose = parseCompose(readFileSync(composePath(id), "utf8"));
		for (const nats of [compose.services!.nats!, compose.services!["nats-hub"]!]) {
			expect(nats.environment).toEqual({
				NATS_SERVICE_PASSWORD: "${NATS_SERVICE_PASSWORD:?set NATS_SERVICE_PASSWORD}",
				NATS_OPS_PASSWORD: "${NATS_OPS_PASSWORD:?set NATS_OPS_PASSWORD}"
			});
			expect((nats as { working_dir?: string }).working_dir).toBe("/etc/nats");
			expect(nats.volumes).toEqual(
				expect.arrayContaining(["../../nats/auth.conf:/etc/nats/auth.conf:ro", `\${EDGEHOME_NATS_CERTS:?set EDGEHOME_NATS_CERTS}/${id}:/etc/nats/certs:ro`])
			);
		}
		const core = compose.services!.core!;
		expect(core.environment).toMatchObject({
			EDGEHOME_NATS_USER: "service",
			EDGEHOME_NATS_PASSWORD: "${NATS_SERVICE_PASSWORD:?set NATS_SERVICE_PASSWORD}",
			EDGEHOME_NATS_CA: "/etc/edgehome/nats-ca.crt",
			EDGEHOME_CAPABILITY_KEYS: "${EDGEHOME_CAPABILITY_KEYS:?set EDGEHOME_CAPABILITY_KEYS}"
		});
		expect(core.volumes).toContain("${EDGEHOME_NATS_CERTS:?set EDGEHOME_NATS_CERTS}/ca.crt:/etc/edgehome/nats-ca.crt:ro");
	});
});
