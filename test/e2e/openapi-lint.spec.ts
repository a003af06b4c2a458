import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LintRun } from "../openapi/lint.ts";
import { dumpGatewayDocuments, lintDocuments } from "../openapi/lint.ts";

const dir = mkdtempSync(join(tmpdir(), "edgehome-openapi-test-"));
let runs: LintRun[] = [];

beforeAll(async () => {
	runs = lintDocuments(await dumpGatewayDocuments(dir));
}, 120_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("the gateways' OpenAPI documents under the linters issue #11 names", () => {
	it("pass `redocly lint` (recommended rules) with no error", () => {
		const redocly = runs.find(r => r.tool === "redocly")!;
		expect(redocly.output).toMatch(/validated in/);
		expect({ exitCode: redocly.exitCode, output: redocly.output }).toEqual({ exitCode: 0, output: expect.not.stringMatching(/\berror\b/) });
	});

	it("pass `spectral lint` (spectral:oas) with no error", () => {
		const spectral = runs.find(r => r.tool === "spectral")!;
		expect({ exitCode: spectral.exitCode, output: spectral.output }).toEqual({ exitCode: 0, output: expect.stringMatching(/\(0 errors,|No results/) });
	});
});
