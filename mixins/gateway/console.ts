import { readdir, readFile } from "node:fs/promises";
import { extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Errors } from "moleculer";
import { declared } from "./declared-errors.ts";
import * as answer from "./response-schemas.ts";
import type { GatewayContext, GatewayRoute } from "./routes.ts";
import { DOCUMENT_HEADERS } from "./security-headers.ts";

/**
 * The admin console (console/ in the repository, built by Vite into console/dist): one page and
 * its files, served by api-cms. The page calls the same public REST API as any client; nothing
 * here knows what it shows.
 */

/** Where the page lives; its files are beside it (the build names them so: console/vite.config.ts). */
export const CONSOLE_PATH = "/console";

/**
 * For the page and everything it loads: its own files only. No inline script or style, no eval, no
 * other origin; the API it calls is this origin.
 */
export const CONSOLE_CSP = [
	"default-src 'self'",
	"script-src 'self'",
	"style-src 'self'",
	"img-src 'self'",
	"connect-src 'self'",
	"object-src 'none'",
	"base-uri 'self'",
	"form-action 'self'",
	"frame-ancestors 'none'"
].join("; ");

const CONTENT_TYPES: Readonly<Record<string, string>> = {
	".js": "text/javascript; charset=utf-8",
	".css": "text/css; charset=utf-8",
	".svg": "image/svg+xml",
	".png": "image/png"
};

/** The built console: EDGEHOME_CONSOLE_DIR, else console/dist of this repository (`npm run build:console`). */
export function consoleDir(env = process.env): string {
	return env.EDGEHOME_CONSOLE_DIR || fileURLToPath(new URL("../../console/dist", import.meta.url));
}

const notBuilt = () => new Errors.MoleculerClientError("the console is not built here: run `npm run build:console`", 404, "CONSOLE_NOT_BUILT");
const noSuchFile = () => new Errors.MoleculerClientError("no such file", 404, "NOT_FOUND");

/**
 * A file of the built console by its bare name: names are looked up in the folder's listing (a
 * name with a slash or `..` is never in it), and only the types above are served.
 */
async function consoleFile(dir: string, name: string): Promise<{ body: Buffer; type: string }> {
	const type = CONTENT_TYPES[extname(name)];
	if (type === undefined) throw noSuchFile();
	const names = await readdir(dir).catch(() => {
		throw notBuilt();
	});
	if (!names.includes(name)) throw noSuchFile();
	return { body: await readFile(join(dir, name)), type };
}

/** `/console` and `/console/:file`, for api-cms's route table. */
export function consoleRoutes(): GatewayRoute[] {
	return [
		{
			method: "GET",
			path: CONSOLE_PATH,
			name: "consolePage",
			summary: "The admin console (a page that uses this API)",
			tag: "meta",
			auth: false,
			status: 200,
			response: answer.file,
			mediaTypes: ["text/html"],
			errors: [declared(notBuilt(), { asRaised: true })],
			params: { $$strict: true },
			async handler(ctx: GatewayContext) {
				const body = await readFile(join(consoleDir(), "index.html")).catch(() => {
					throw notBuilt();
				});
				ctx.meta.$responseType = "text/html; charset=utf-8";
				ctx.meta.$responseHeaders = { ...DOCUMENT_HEADERS, "Content-Security-Policy": CONSOLE_CSP, "Cache-Control": "no-cache" };
				return body;
			}
		},
		{
			method: "GET",
			path: `${CONSOLE_PATH}/:file`,
			name: "consoleFile",
			summary: "The admin console's scripts, style sheet and icon",
			tag: "meta",
			auth: false,
			status: 200,
			response: answer.file,
			mediaTypes: ["text/javascript", "text/css", "image/svg+xml", "image/png"],
			errors: [declared(noSuchFile()), declared(notBuilt(), { asRaised: true })],
			params: { $$strict: true, file: { type: "string", max: 64 } },
			async handler(ctx: GatewayContext, params: { file: string }) {
				const file = await consoleFile(consoleDir(), params.file);
				ctx.meta.$responseType = file.type;
				// Every name but the icon's carries a hash of its content (a new build, new names); the page itself is never cached.
				ctx.meta.$responseHeaders = {
					"Cache-Control": /-[A-Za-z0-9_-]{8}\.(js|css)$/.test(params.file) ? "public, max-age=31536000, immutable" : "public, max-age=3600"
				};
				return file.body;
			}
		}
	];
}
