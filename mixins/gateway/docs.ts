import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { extname, join } from "node:path";

/** Where the page finds the gateway's OpenAPI document (same origin). */
export const DOCS_SPEC_URL = "/api/v1/openapi.json";

/** Where the page and its files are served; the page's `<base>` so `/docs` and `/docs/` both work. */
export const DOCS_BASE = "/docs/";

/**
 * For the page: every script is a same-origin file, so no inline script or eval is allowed.
 * Swagger UI sets style attributes (hence 'unsafe-inline' for styles only), draws icons from
 * data: URIs, shows image responses from blob: URLs and calls the API on this origin.
 */
export const DOCS_CSP = [
	"default-src 'none'",
	"script-src 'self'",
	"style-src 'self' 'unsafe-inline'",
	"img-src 'self' data: blob:",
	"connect-src 'self'",
	"base-uri 'self'",
	"form-action 'self'",
	"frame-ancestors 'none'"
].join("; ");

/** Files taken as they are from swagger-ui-dist: nothing else of that folder is ever read. */
const DIST_FILES = [
	"swagger-ui.css",
	"index.css",
	"swagger-ui-bundle.js",
	"swagger-ui-standalone-preset.js",
	"favicon-32x32.png",
	"favicon-16x16.png"
] as const;

const CONTENT_TYPES: Readonly<Record<string, string>> = {
	".html": "text/html; charset=utf-8",
	".js": "text/javascript; charset=utf-8",
	".css": "text/css; charset=utf-8",
	".png": "image/png"
};

/** The page. Same-origin files only, so DOCS_CSP holds. */
export function docsIndexHtml(): string {
	return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>edgehome API</title>
<base href="${DOCS_BASE}">
<link rel="stylesheet" href="./swagger-ui.css">
<link rel="stylesheet" href="./index.css">
<link rel="icon" type="image/png" href="./favicon-32x32.png" sizes="32x32">
<link rel="icon" type="image/png" href="./favicon-16x16.png" sizes="16x16">
</head>
<body>
<div id="swagger-ui"></div>
<script src="./swagger-ui-bundle.js"></script>
<script src="./swagger-ui-standalone-preset.js"></script>
<script src="./init.js"></script>
</body>
</html>
`;
}

/** Starts Swagger UI on the gateway's document. A file of its own since the CSP forbids inline script. */
export function docsInitJs(): string {
	// validatorUrl null: the default badge would load an image from a third-party validator.
	return `"use strict";
window.addEventListener("load", function () {
	window.ui = SwaggerUIBundle({
		url: ${JSON.stringify(DOCS_SPEC_URL)},
		dom_id: "#swagger-ui",
		deepLinking: true,
		validatorUrl: null,
		presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
		layout: "StandaloneLayout"
	});
});
`;
}

export interface DocsAssets {
	indexHtml: string;
	initJs: string;
	/** Every name `readDocsFile` answers for (the page's files included). */
	files: readonly string[];
	contentTypes: Readonly<Record<string, string>>;
	csp: string;
}

export function docsAssets(): DocsAssets {
	return {
		indexHtml: docsIndexHtml(),
		initJs: docsInitJs(),
		files: ["index.html", "init.js", ...DIST_FILES],
		contentTypes: CONTENT_TYPES,
		csp: DOCS_CSP
	};
}

/** swagger-ui-dist's folder; `absolute-path.js` alone, as the package's main file evaluates the whole bundle. */
function distDir(): string {
	const getAbsoluteFSPath = createRequire(import.meta.url)("swagger-ui-dist/absolute-path.js") as () => string;
	return getAbsoluteFSPath();
}

const cache = new Map<string, { body: Buffer; type: string }>();

function typeOf(name: string): string {
	return CONTENT_TYPES[extname(name)] ?? "application/octet-stream";
}

/**
 * A file of the docs page by its bare name, or undefined for any name outside the allow-list:
 * names are looked up, never joined as given, so no path reaches the file system.
 */
export function readDocsFile(name: string): { body: Buffer; type: string } | undefined {
	const cached = cache.get(name);
	if (cached) return cached;
	let body: Buffer;
	if (name === "index.html") body = Buffer.from(docsIndexHtml());
	else if (name === "init.js") body = Buffer.from(docsInitJs());
	else {
		const file = DIST_FILES.find(f => f === name);
		if (file === undefined) return undefined;
		body = readFileSync(join(distDir(), file));
	}
	const entry = { body, type: typeOf(name) };
	cache.set(name, entry);
	return entry;
}
