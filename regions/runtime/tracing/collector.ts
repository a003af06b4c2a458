import type { Env } from "../env.ts";
import { EnvError } from "../env.ts";

/** The collector traces go to, and the variable that named it. */
export interface OtlpCollector {
	variable: string;
	url: string;
}

/**
 * Where traces go: EDGEHOME_OTLP_URL, else OTel's own OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else
 * OTEL_EXPORTER_OTLP_ENDPOINT with `/v1/traces`. None set: no tracing at all (no spans made).
 */
export function otlpCollector(env: Env): OtlpCollector | undefined {
	const named = (["EDGEHOME_OTLP_URL", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] as const).find(name => env[name]);
	const base = env.OTEL_EXPORTER_OTLP_ENDPOINT;
	const [variable, raw] = named ? [named, env[named]!] : base ? ["OTEL_EXPORTER_OTLP_ENDPOINT", `${base.replace(/\/+$/, "")}/v1/traces`] : [];
	if (!variable || !raw) return undefined;
	let url: URL;
	try {
		url = new URL(raw);
	} catch {
		throw new EnvError(variable, raw, "an http:// or https:// URL of an OTLP/HTTP collector");
	}
	if (url.protocol !== "http:" && url.protocol !== "https:") throw new EnvError(variable, raw, "an http:// or https:// URL of an OTLP/HTTP collector");
	return { variable, url: url.toString() };
}
