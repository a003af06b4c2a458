import type { ServerResponse } from "node:http";
import { Errors } from "moleculer";
import { describe, expect, it } from "vitest";
import type { RouteMiddleware } from "../../../../mixins/gateway/route-middlewares.ts";
import { runMiddlewares } from "../../../../mixins/gateway/route-middlewares.ts";
import type { GatewayRequest } from "../../../../mixins/gateway/routes.ts";

const req = {} as GatewayRequest;
const res = {} as ServerResponse;

/** A connect-style middleware that records its name and passes `err` on, at once or on a later turn. */
function step(log: string[], name: string, opts: { later?: boolean; err?: unknown } = {}): RouteMiddleware {
	return (_req, _res, next) => {
		log.push(name);
		const go = () => (next as (err?: unknown) => void)(opts.err);
		if (opts.later) setImmediate(go);
		else go();
	};
}

describe("runMiddlewares", () => {
	it("answers without a promise when every middleware finishes at once, in order", () => {
		const log: string[] = [];
		expect(runMiddlewares(null, [step(log, "json"), step(log, "urlencoded")], req, res)).toBeUndefined();
		expect(log).toEqual(["json", "urlencoded"]);
	});

	it("waits for a middleware that finishes later (a body being read) before the next one runs", async () => {
		const log: string[] = [];
		const running = runMiddlewares(null, [step(log, "json", { later: true }), step(log, "after")], req, res);
		expect(running).toBeInstanceOf(Promise);
		expect(log).toEqual(["json"]);
		await running;
		expect(log).toEqual(["json", "after"]);
	});

	it("turns a body parser's failure into moleculer-web's error, status and type kept, at once or later", async () => {
		const parseFailed = Object.assign(new SyntaxError("Unexpected token"), { status: 400, type: "entity.parse.failed" });
		const log: string[] = [];
		let thrown: unknown;
		try {
			runMiddlewares(null, [step(log, "json", { err: parseFailed }), step(log, "skipped")], req, res);
		} catch (err) {
			thrown = err;
		}
		expect(thrown).toBeInstanceOf(Errors.MoleculerError);
		expect(thrown).toMatchObject({ message: "Unexpected token", code: 400, type: "entity.parse.failed" });
		expect(log).toEqual(["json"]);
		const tooLarge = Object.assign(new Error("request entity too large"), { status: 413, type: "entity.too.large" });
		await expect(runMiddlewares(null, [step([], "json", { later: true, err: tooLarge })], req, res)).rejects.toMatchObject({
			code: 413,
			type: "entity.too.large"
		});
	});

	it("after a failure runs only error middlewares, which may recover", () => {
		const log: string[] = [];
		const recover: RouteMiddleware = (err, _req, _res, next) => {
			log.push(`recovered ${(err as Error).message}`);
			(next as () => void)();
		};
		expect(runMiddlewares(null, [step(log, "json", { err: new Error("bad") }), step(log, "skipped"), recover, step(log, "after")], req, res)).toBeUndefined();
		expect(log).toEqual(["json", "recovered bad", "after"]);
	});
});
