import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterAll, expect, it } from "vitest";
import { toWire } from "../../../services/sv-oss/wire.ts";
import { within } from "../../harness/waiting.ts";
import { startOnFolder } from "../../unit/services/sv-oss/crash-node.ts";

/*
 * kill -9 during an upload (embedded, the data folder): after a restart no half file is visible,
 * none is counted against the quota, and what the dead writer left is cleared.
 */

const dir = mkdtempSync(join(tmpdir(), "oss-crash-"));
const blindIndexKey = randomBytes(32).toString("hex");
const env = { ...process.env, EDGEHOME_PII_KEYS: process.env.EDGEHOME_PII_KEYS ?? `k1:${randomBytes(32).toString("base64")}` };
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const partials = () => readdirSync(join(dir, "cn-east.files", ".partial")).map(f => statSync(join(dir, "cn-east.files", ".partial", f)).size);

it("leaves no half file visible and nothing counted after a kill -9 mid-upload", async () => {
	const child = spawn(process.execPath, [join(import.meta.dirname, "../../unit/services/sv-oss/upload-child.ts"), dir, blindIndexKey], {
		env,
		stdio: ["ignore", "pipe", "inherit"]
	});
	const userId = await new Promise<string>((resolve, reject) => {
		child.stdout.once("data", (b: Buffer) => resolve(b.toString().trim()));
		child.once("exit", code => reject(new Error(`the child ended first (${code})`)));
	});
	await within(() => partials().some(size => size > 0), 10_000);
	child.kill("SIGKILL");
	await new Promise(r => child.once("exit", r));

	Object.assign(process.env, { EDGEHOME_PII_KEYS: env.EDGEHOME_PII_KEYS });
	const { node, stop } = await startOnFolder(dir, blindIndexKey, env);
	try {
		expect(partials()).toEqual([]);
		expect(await node.broker.call("sv-oss.list", { userId })).toEqual({ items: [], nextCursor: null });
		expect(await node.broker.call("sv-oss.usage", { userId })).toMatchObject({ files: 0, usedBytes: 0 });
		expect(readdirSync(join(dir, "cn-east.files")).filter(f => f !== ".partial")).toEqual([]);
		// The user uploads again as if nothing had happened.
		const again = await node.broker.call<{ size: number }, unknown>(
			"sv-oss.upload",
			{ userId, name: "again.txt", contentType: "text/plain" },
			{ stream: toWire(Readable.from([Buffer.from("after the crash")])) }
		);
		expect(again.size).toBe(15);
	} finally {
		await stop();
	}
}, 60_000);
