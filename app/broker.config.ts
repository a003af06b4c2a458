import type { BrokerOptions, Errors } from "moleculer";
import { isEndpointFailure } from "../regions/errors.ts";
import type { RegionDefinition } from "../regions/region.ts";
import { natsCredentials } from "../regions/runtime/bus-credentials.ts";
import { BusWatch } from "../regions/runtime/bus-watch.ts";
import { capabilityKeys } from "../regions/runtime/capability-keys.ts";
import type { Env } from "../regions/runtime/env.ts";
import { envChoice, envFloat, envInt, envString } from "../regions/runtime/env.ts";
import { rootLogger } from "../regions/runtime/logger.ts";
import { OpsMetricsMiddleware } from "../regions/runtime/ops-metrics.ts";
import { OpsReporter } from "../regions/runtime/ops-reporter.ts";
import { opsTokenFromEnv } from "../regions/runtime/ops-token.ts";
import { RequestContextMiddleware } from "../regions/runtime/request-context.ts";
import { RestrictedCalls } from "../regions/runtime/restricted-calls.ts";
import { ActionSpans } from "../regions/runtime/tracing/action-spans.ts";
import { brokerTracing } from "../regions/runtime/tracing/config.ts";
import { redisOptions } from "../regions/stores/redis.ts";

/** How a node reaches its peers: one process holding every region, or NATS. */
export type Transport = "embedded" | "nats";

export interface NodeSettings {
	region: RegionDefinition;
	/** The service group this process runs (one container per group in production). */
	group: string;
	transport: Transport;
	env?: Env;
}

/** Only errors that prove the request was not run are retried; a timeout may have run it. */
function retryable(err: Error): boolean {
	const e = err as Errors.MoleculerError;
	return Boolean(e.retryable) && e.type !== "REQUEST_TIMEOUT";
}

/**
 * The Moleculer namespace of a region. A prefix (EDGEHOME_NAMESPACE_PREFIX) lets test runs and
 * staging stacks share one NATS without ever seeing each other.
 */
export function regionNamespace(regionId: string, env: Env = process.env): string {
	return `${envString(env, "EDGEHOME_NAMESPACE_PREFIX", "")}${regionId}`;
}

/** The one broker configuration, derived from a region definition and the environment. */
export function brokerConfig({ region, group, transport, env = process.env }: NodeSettings): BrokerOptions {
	const logLevel = envChoice(env, "EDGEHOME_LOG_LEVEL", ["fatal", "error", "warn", "info", "debug", "trace"], "info");
	const logFormat = envChoice(env, "EDGEHOME_LOG_FORMAT", ["json", "pretty"], process.stdout.isTTY ? "pretty" : "json");
	const metricsPort = env.EDGEHOME_METRICS_PORT === "off" ? 0 : envInt(env, "EDGEHOME_METRICS_PORT", region.ports.metrics, 1, 65535);
	const cacher = envChoice(env, "EDGEHOME_CACHER", ["redis", "memory", "off"], transport === "nats" ? "redis" : "memory");
	const logger = rootLogger(logLevel, logFormat);
	// Signed calls of the restricted actions (token minting, grants); see regions/runtime/restricted-calls.ts.
	const capabilities = capabilityKeys(env, transport);
	const bus = new BusWatch();
	const nodeID = envString(env, "EDGEHOME_NODE_ID", `${region.id}-${group}-${process.pid}`);

	return {
		namespace: regionNamespace(region.id, env),
		nodeID,
		logger: {
			type: "Pino",
			options: {
				level: logLevel,
				createLogger: (level: string, bindings: Record<string, unknown>) =>
					logger.child({ region: region.id, nodeID: bindings.nodeID, svc: bindings.svc, mod: bindings.mod }, { level })
			}
		},
		transporter:
			transport === "nats"
				? {
						type: "NATS",
						options: {
							url: envString(env, "EDGEHOME_NATS_URL", region.endpoints.nats),
							...natsCredentials(env),
							maxReconnectAttempts: -1,
							reconnectTimeWait: 1000,
							// A connection that goes silent without closing is declared lost within ~3 s.
							pingInterval: 1000,
							maxPingOut: 2
						}
					}
				: "Fake",
		cacher:
			cacher === "off"
				? null
				: cacher === "redis"
					? {
							type: "Redis",
							options: {
								prefix: `${envString(env, "EDGEHOME_KEY_PREFIX", "edgehome")}:${region.id}:cache`,
								ttl: envInt(env, "EDGEHOME_CACHE_TTL_S", 300, 1),
								redis: redisOptions(envString(env, "EDGEHOME_REDIS_URL", region.endpoints.redis))
							}
						}
					: { type: "MemoryLRU", options: { max: envInt(env, "EDGEHOME_CACHE_MAX", 10_000, 1), ttl: envInt(env, "EDGEHOME_CACHE_TTL_S", 300, 1) } },
		serializer: "JSON",
		requestTimeout: envInt(env, "EDGEHOME_REQUEST_TIMEOUT_MS", 10_000, 100),
		retryPolicy: {
			enabled: true,
			retries: envInt(env, "EDGEHOME_RETRIES", 2, 0, 10),
			delay: envInt(env, "EDGEHOME_RETRY_DELAY_MS", 100, 1),
			maxDelay: 2000,
			factor: 2,
			check: retryable
		},
		circuitBreaker: {
			enabled: true,
			threshold: envFloat(env, "EDGEHOME_CB_THRESHOLD", 0.5, 0.01, 1),
			minRequestCount: envInt(env, "EDGEHOME_CB_MIN_REQUESTS", 20, 1),
			windowTime: envInt(env, "EDGEHOME_CB_WINDOW_S", 60, 1),
			halfOpenTime: envInt(env, "EDGEHOME_CB_HALF_OPEN_MS", 10_000, 100),
			check: isEndpointFailure
		},
		bulkhead: {
			enabled: true,
			concurrency: envInt(env, "EDGEHOME_BULKHEAD_CONCURRENCY", 100, 1),
			maxQueueSize: envInt(env, "EDGEHOME_BULKHEAD_QUEUE", 1000, 0)
		},
		tracking: {
			enabled: true,
			shutdownTimeout: envInt(env, "EDGEHOME_SHUTDOWN_TIMEOUT_MS", 10_000, 100)
		},
		heartbeatInterval: envInt(env, "EDGEHOME_HEARTBEAT_INTERVAL_S", 2, 1),
		heartbeatTimeout: envInt(env, "EDGEHOME_HEARTBEAT_TIMEOUT_S", 6, 2),
		registry: { strategy: "RoundRobin", preferLocal: true, stopDelay: 100 },
		metrics: metricsPort
			? {
					enabled: true,
					// Moleculer's process metrics carry argv, uid and addresses: never collected.
					collectProcessMetrics: false,
					// Moleculer accepts a reporter instance; its typings only list the built-in names.
					reporter: [
						new OpsReporter({
							host: envString(env, "EDGEHOME_METRICS_HOST", "127.0.0.1"),
							port: metricsPort,
							token: opsTokenFromEnv(env),
							labels: { region: region.id }
						})
					] as unknown as Exclude<BrokerOptions["metrics"], boolean | undefined>["reporter"]
				}
			: false,
		// OTLP export when a collector URL is set (EDGEHOME_OTLP_URL); otherwise Moleculer makes no span at all.
		tracing: brokerTracing(env, { region: region.id, nodeID }),
		middlewares: [RequestContextMiddleware, ActionSpans, OpsMetricsMiddleware, bus.middleware(), ...(capabilities ? [RestrictedCalls(capabilities)] : [])],
		// Signals are handled by the launcher, which drains gateways before brokers.
		skipProcessEventRegistration: true,
		metadata: { region: region.id, group }
	};
}
