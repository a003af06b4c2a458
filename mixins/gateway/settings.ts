import type { ServiceSettingSchema } from "moleculer";
import type { ClientType } from "../../regions/region.ts";
import { envInt, envString } from "../../regions/runtime/env.ts";
import { IDEMPOTENCY_KEY_HEADER } from "./idempotency-key.ts";
import type { StreamLimits } from "./live-streams.ts";
import type { RateLimit } from "./rate-limiter.ts";

/** Request limits every gateway enforces. */
export const MAX_BODY_BYTES = 64 * 1024;
export const MAX_HEADER_BYTES = 16 * 1024;
/** Longest a request may take to arrive in full (Node's own default, stated). */
export const REQUEST_TIMEOUT_MS = 300_000;

export interface GatewaySettings extends ServiceSettingSchema {
	client: ClientType;
	/** Listening port; null: the region file's port for this client type. 0: any free port (tests). */
	port: number | null;
	/** Bind address; null: 127.0.0.1 when embedded, else 0.0.0.0 (EDGEHOME_HTTP_HOST overrides). */
	ip: string | null;
	/** Per client IP and per user, shared by the region's gateway nodes (Redis; memory when embedded). */
	rateLimits: { ip: RateLimit; user: RateLimit };
	/** Direct peers whose X-Forwarded-For is believed: IPs or CIDRs, comma-separated. */
	trustedProxies: string;
	/** Allowed CORS origins (comma-separated); empty: no CORS headers at all. */
	corsOrigins: string;
	/** moleculer-web's: how long a request may take to arrive in full. */
	requestTimeout: number;
	/** The live streams (Server-Sent Events) this gateway holds open. */
	streams: StreamLimits;
}

/** A gateway's settings from the environment. */
export function gatewaySettings(client: ClientType, env = process.env): GatewaySettings {
	return {
		client,
		requestTimeout: REQUEST_TIMEOUT_MS,
		port: null,
		ip: env.EDGEHOME_HTTP_HOST || null,
		rateLimits: {
			ip: { max: envInt(env, "EDGEHOME_RATE_IP_PER_MIN", 600, 1), windowMs: 60_000 },
			user: { max: envInt(env, "EDGEHOME_RATE_USER_PER_MIN", 300, 1), windowMs: 60_000 }
		},
		trustedProxies: envString(env, "EDGEHOME_TRUSTED_PROXIES", ""),
		corsOrigins: envString(env, `EDGEHOME_CORS_${client.toUpperCase()}`, ""),
		streams: {
			perUser: envInt(env, "EDGEHOME_STREAMS_PER_USER", 5, 1),
			total: envInt(env, "EDGEHOME_STREAMS_PER_GATEWAY", 10_000, 1),
			heartbeatMs: envInt(env, "EDGEHOME_STREAM_HEARTBEAT_MS", 15_000, 100),
			retryMs: envInt(env, "EDGEHOME_STREAM_RETRY_MS", 3000, 100),
			maxBufferedBytes: 1024 * 1024
		}
	};
}

/** moleculer-web's CORS options for the configured origins; none configured: no CORS at all. */
export function corsOptions(origins: string) {
	if (!origins) return undefined;
	return {
		origin: origins.split(",").map(s => s.trim()),
		methods: ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
		allowedHeaders: ["Authorization", "Content-Type", "Content-Encoding", "X-Request-Id", "traceparent", IDEMPOTENCY_KEY_HEADER],
		exposedHeaders: ["X-Request-Id", "traceparent", "Retry-After", "ETag"],
		maxAge: 600
	};
}
