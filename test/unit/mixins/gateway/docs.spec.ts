import { describe, expect, it } from "vitest";
import { DOCS_CSP, DOCS_SPEC_URL, docsAssets, docsIndexHtml, readDocsFile } from "../../../../mixins/gateway/docs.ts";

describe("docs page", () => {
	const assets = docsAssets();

	it("references only same-origin files, all of them served, and no inline script", () => {
		const html = docsIndexHtml();
		expect(assets.indexHtml).toBe(html);
		const refs = [...html.matchAll(/\s(?:src|href)="([^"]*)"/g)].map(m => m[1] ?? "");
		expect(refs).toEqual(expect.arrayContaining(["./swagger-ui.css", "./swagger-ui-bundle.js", "./swagger-ui-standalone-preset.js", "./init.js"]));
		for (const ref of refs) {
			expect(ref).not.toMatch(/^[a-z][a-z0-9+.-]*:|^\/\//i);
			if (ref.startsWith("./")) expect(readDocsFile(ref.slice(2))).toBeDefined();
		}
		expect(html).toContain('<base href="/docs/">');
		for (const script of html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)) {
			expect(script[1]).toMatch(/\ssrc="/);
			expect(script[2]?.trim()).toBe("");
		}
		expect(html).not.toMatch(/\son[a-z]+=/i);
	});

	it("points Swagger UI at the gateway's document without the third-party validator badge", () => {
		expect(assets.initJs).toContain(JSON.stringify(DOCS_SPEC_URL));
		expect(DOCS_SPEC_URL).toBe("/api/v1/openapi.json");
		expect(assets.initJs).toContain("validatorUrl: null");
		expect(readDocsFile("init.js")?.body.toString()).toBe(assets.initJs);
	});

	it("has a CSP that allows only same-origin scripts and no framing", () => {
		expect(assets.csp).toBe(DOCS_CSP);
		const directives = new Map(
			DOCS_CSP.split(";").map(d => {
				const [name = "", ...values] = d.trim().split(/\s+/);
				return [name, values] as const;
			})
		);
		expect(directives.get("default-src")).toEqual(["'none'"]);
		expect(directives.get("script-src")).toEqual(["'self'"]);
		expect(directives.get("connect-src")).toEqual(["'self'"]);
		expect(directives.get("frame-ancestors")).toEqual(["'none'"]);
		expect(DOCS_CSP).not.toContain("unsafe-eval");
	});

	it("lists its files with content types", () => {
		expect(assets.files).toEqual(
			expect.arrayContaining(["index.html", "init.js", "swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js"])
		);
		for (const name of assets.files) {
			const file = readDocsFile(name);
			expect(file?.body.length).toBeGreaterThan(0);
			expect(Object.values(assets.contentTypes)).toContain(file?.type);
		}
	});
});

describe("readDocsFile", () => {
	it("serves swagger-ui-dist's bundle as JavaScript, from memory after the first read", () => {
		const bundle = readDocsFile("swagger-ui-bundle.js");
		expect(bundle?.type).toMatch(/^text\/javascript/);
		expect(bundle?.body.length).toBeGreaterThan(100_000);
		expect(bundle?.body.toString("utf8", 0, 4096)).toMatch(/SwaggerUIBundle/);
		expect(readDocsFile("swagger-ui-bundle.js")).toBe(bundle);
		expect(readDocsFile("swagger-ui.css")?.type).toMatch(/^text\/css/);
		expect(readDocsFile("index.html")?.type).toMatch(/^text\/html/);
		expect(readDocsFile("favicon-32x32.png")?.type).toBe("image/png");
	});

	it("answers nothing outside the allow-list", () => {
		for (const name of [
			"../package.json",
			"/etc/passwd",
			"swagger-ui-bundle.js/../../x",
			"./swagger-ui-bundle.js",
			"swagger-ui-bundle.js.map",
			"swagger-ui-bundle.js\0",
			"..%2Fpackage.json",
			"package.json",
			"index.js",
			"absolute-path.js",
			"oauth2-redirect.html",
			"SWAGGER-UI-BUNDLE.JS",
			"__proto__",
			"constructor",
			"",
			"."
		]) {
			expect(readDocsFile(name), name).toBeUndefined();
		}
	});
});
