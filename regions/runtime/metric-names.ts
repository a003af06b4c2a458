/**
 * Every metric the ops port serves, by its served (Prometheus) name: the one place a metric is
 * named, typed and described. Only these are served, and the business metrics services declare
 * (declared-metrics.ts); nothing else a broker collects (argv, uid, addresses, every action's name
 * and error type) reaches /metrics.
 */
export const METRIC = {
	httpRequests: "edgehome_http_requests_total",
	httpDuration: "edgehome_http_request_duration_seconds",
	endpointFailures: "edgehome_endpoint_failures_total",
	transporterConnected: "edgehome_transporter_connected",
	regionReachable: "edgehome_region_reachable",
	routingForwards: "edgehome_routing_forwards_total",
	routingHeals: "edgehome_routing_heals_total",
	moves: "edgehome_moves_total",
	directoryLookups: "edgehome_directory_lookups_total",
	directoryCacheHits: "edgehome_directory_cache_hits_total",
	directoryCacheMisses: "edgehome_directory_cache_misses_total",
	directoryCacheEntries: "edgehome_directory_cache_entries",
	channelPending: "edgehome_channel_pending",
	channelAcknowledged: "edgehome_channel_acknowledged_total",
	channelRedelivered: "edgehome_channel_redelivered_total",
	channelDeadLettered: "edgehome_channel_dead_lettered_total",
	noticesRateLimited: "edgehome_notices_rate_limited_total",
	actionCalls: "edgehome_action_calls_total",
	actionErrors: "edgehome_action_errors_total",
	actionDuration: "edgehome_action_duration_seconds",
	outboxOldestAge: "edgehome_outbox_oldest_age_seconds",
	signingKeyRotation: "edgehome_signing_key_rotation_timestamp_seconds",
	ready: "edgehome_ready",
	natsCertificateExpiry: "edgehome_nats_certificate_expiry_timestamp_seconds",
	residentMemory: "process_resident_memory_bytes",
	cpuSeconds: "process_cpu_seconds_total",
	startTime: "process_start_time_seconds",
	heapUsed: "nodejs_heap_used_bytes",
	eventLoopDelay: "nodejs_eventloop_delay_p99_seconds",
	globalOperationsAvailable: "edgehome_global_operations_available"
} as const;

export type MetricName = (typeof METRIC)[keyof typeof METRIC];

/** A served metric's name, kind, help and labels, whoever names it: this catalogue, or a service's declaration (declared-metrics.ts). */
export interface MetricShape {
	name: string;
	type: "counter" | "gauge" | "histogram";
	help: string;
	labelNames?: string[];
	/** Histogram upper bounds, in the metric's unit. */
	buckets?: number[];
}

export interface MetricDefinition extends MetricShape {
	name: MetricName;
	/** A counter label with a fixed set of values: every value is served at 0 from the start. */
	seeded?: { label: string; values: readonly string[] };
}

/** Seconds: from a cached read (sub-millisecond) to a call near the 10 s request timeout. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** What the broker records (broker.metrics); counters are registered at 0. */
export const STORED_METRICS: MetricDefinition[] = [
	{
		name: METRIC.actionCalls,
		type: "counter",
		help: "Calls of the actions of the services that take the metrics mixin, on this node: local, or forwarded from another region",
		labelNames: ["service", "action", "origin"]
	},
	{
		name: METRIC.actionErrors,
		type: "counter",
		help: "Those calls that failed, by error code",
		labelNames: ["service", "action", "origin", "code"]
	},
	{
		name: METRIC.actionDuration,
		type: "histogram",
		help: "Time from a call's arrival at the action to its answer",
		labelNames: ["service", "action", "origin"],
		buckets: LATENCY_BUCKETS
	},
	{
		name: METRIC.httpRequests,
		type: "counter",
		help: "HTTP requests answered by the gateways, by route template and status code",
		labelNames: ["gateway", "route", "code"]
	},
	{
		name: METRIC.httpDuration,
		type: "histogram",
		help: "Time from an HTTP request to its response, by route template",
		labelNames: ["gateway", "route"],
		buckets: LATENCY_BUCKETS
	},
	{
		name: METRIC.endpointFailures,
		type: "counter",
		help: "Local action runs that failed as an endpoint failure (timeout or unexpected error; domain answers are not failures), by service",
		labelNames: ["service"]
	},
	{ name: METRIC.regionReachable, type: "gauge", help: "1 while the peer region answers its probes", labelNames: ["peer"] },
	{ name: METRIC.routingForwards, type: "counter", help: "Calls forwarded to the region named by `to`", labelNames: ["to"] },
	{ name: METRIC.routingHeals, type: "counter", help: "WRONG_REGION answers healed by a directory re-read" },
	{
		name: METRIC.moves,
		type: "counter",
		help: "User moves by outcome",
		labelNames: ["outcome"],
		seeded: { label: "outcome", values: ["moved", "rolled-back", "finished"] }
	},
	{ name: METRIC.directoryLookups, type: "counter", help: "Home lookups made by this node's directory client" },
	{ name: METRIC.directoryCacheHits, type: "counter", help: "Home lookups answered from this node's cache" },
	{ name: METRIC.directoryCacheMisses, type: "counter", help: "Home lookups that went to the directory store" },
	{ name: METRIC.directoryCacheEntries, type: "gauge", help: "Entries in this node's home lookup cache" },
	{
		name: METRIC.channelPending,
		type: "gauge",
		help: "Channel messages the consumer group has not acknowledged yet (waiting, in flight or backing off), as last sampled by this node",
		labelNames: ["channel", "group"]
	},
	{ name: METRIC.channelAcknowledged, type: "counter", help: "Channel messages handled and acknowledged by this node", labelNames: ["channel", "group"] },
	{
		name: METRIC.channelRedelivered,
		type: "counter",
		help: "Channel deliveries to this node that were not the message's first (after a failure, a crash or an expired ack wait)",
		labelNames: ["channel", "group"]
	},
	{ name: METRIC.channelDeadLettered, type: "counter", help: "Channel messages this node gave up on and dead-lettered", labelNames: ["channel", "group"] },
	{
		name: METRIC.noticesRateLimited,
		type: "counter",
		help: "Notices this node did not send by e-mail or webhook because their user was past the hourly rate of the channel",
		labelNames: ["channel"],
		seeded: { label: "channel", values: ["email", "webhook"] }
	},
	{
		name: METRIC.outboxOldestAge,
		type: "gauge",
		help: "Age of the oldest message waiting in the outbox, as last read by this node's relay (0 when it is empty)",
		labelNames: ["outbox"]
	},
	{
		name: METRIC.signingKeyRotation,
		type: "gauge",
		help: "When this region's token signing key is next replaced: its published successor's activation, else the active key's activation plus the rotation period"
	}
];

/** Read at scrape time. */
export const SAMPLED_METRICS: MetricDefinition[] = [
	{ name: METRIC.ready, type: "gauge", help: "1 while the node is ready (what /readyz answers 200 for)" },
	{ name: METRIC.transporterConnected, type: "gauge", help: "1 while this node's connection to its region's bus is up" },
	{ name: METRIC.residentMemory, type: "gauge", help: "Resident set size of the process" },
	{ name: METRIC.cpuSeconds, type: "counter", help: "User and system CPU time spent by the process" },
	{ name: METRIC.startTime, type: "gauge", help: "Start time of the process since the Unix epoch" },
	{ name: METRIC.heapUsed, type: "gauge", help: "V8 heap in use" },
	{ name: METRIC.eventLoopDelay, type: "gauge", help: "99th percentile of the event loop's delay since the previous scrape of this port" },
	{
		name: METRIC.globalOperationsAvailable,
		type: "gauge",
		help: "1 while a write to the directory's origin could commit now (its leader hears from a quorum), so registration, moves and identity changes can succeed"
	},
	{
		name: METRIC.natsCertificateExpiry,
		type: "gauge",
		help: "When the first certificate of the chain the NATS server presented (its own or its CA's) expires, as of this process's last TLS handshake; no sample without TLS"
	}
];
