import type { ServiceBroker } from "moleculer";
import apiApp from "../../services/api-app/api-app.service.ts";
import apiCms from "../../services/api-cms/api-cms.service.ts";
import apiWww from "../../services/api-www/api-www.service.ts";
import apiWx from "../../services/api-wx/api-wx.service.ts";
import type { AnyServiceSchema } from "../../services/index.ts";

export const GATEWAYS = { "api-app": apiApp, "api-www": apiWww, "api-cms": apiCms, "api-wx": apiWx } as const;
export type GatewayName = keyof typeof GATEWAYS;

/** The four gateways on free ports (the region files' ports would clash between parallel test files). */
export function gatewaySchemas(settings: Partial<Record<GatewayName, Record<string, unknown>>> = {}): AnyServiceSchema[] {
	return Object.entries(GATEWAYS).map(([name, schema]) => ({ ...schema, settings: { ...schema.settings, port: 0, ...settings[name as GatewayName] } }));
}

/** Base URL of a gateway running on `broker`. */
export function gatewayUrl(broker: ServiceBroker, name: GatewayName): string {
	const service = broker.getLocalService(name) as unknown as { server: { address(): { port: number } } } | undefined;
	if (!service) throw new Error(`${name} does not run on ${broker.nodeID}`);
	return `http://127.0.0.1:${service.server.address().port}`;
}

export interface HttpAnswer {
	status: number;
	headers: Headers;
	body: any;
	text: string;
}

/** One JSON request; the body parsed when it is JSON. */
export async function http(
	base: string,
	method: string,
	path: string,
	opts: { body?: unknown; token?: string; headers?: Record<string, string>; raw?: string } = {}
): Promise<HttpAnswer> {
	const headers: Record<string, string> = { ...opts.headers };
	if (opts.token) headers.authorization = `Bearer ${opts.token}`;
	let body: string | undefined = opts.raw;
	if (opts.body !== undefined) {
		headers["content-type"] = "application/json";
		body = JSON.stringify(opts.body);
	}
	return answerOf(await fetch(`${base}${path}`, { method, headers, body }));
}

/** A response read in full; its body parsed when it is JSON. */
export async function answerOf(res: Response): Promise<HttpAnswer> {
	const text = await res.text();
	let parsed: unknown;
	try {
		parsed = text ? JSON.parse(text) : undefined;
	} catch {
		parsed = undefined;
	}
	return { status: res.status, headers: res.headers, body: parsed, text };
}
