import { existsSync, readdirSync, readFileSync } from "node:fs";
import { isBuiltin } from "node:module";
import { basename, dirname, join, relative, resolve, sep } from "node:path";
import { parseDocument } from "yaml";
import type { RegionDefinition } from "../../../regions/region.ts";
import type { NatsMap, NatsValue } from "./nats-conf.ts";
import { isNatsMap, parseNatsConf } from "./nats-conf.ts";

/**
 * Static checks of deploy/: each returns the problems it finds, one readable line each, so that a
 * test can both require none for the shipped files and prove that a broken copy is caught.
 */

export const ROOT = resolve(import.meta.dirname, "../../..");
export const DEPLOY = join(ROOT, "deploy");
export const DOCKERFILE = join(DEPLOY, "Dockerfile");

export const composePath = (regionId: string) => join(DEPLOY, "regions", regionId, "compose.yml");
/** A region's edge server config. */
export const natsConfPath = (regionId: string) => join(DEPLOY, "nats", `${regionId}.conf`);
/** A region's server of the hub cluster. */
export const hubConfPath = (regionId: string) => join(DEPLOY, "nats", `hub-${regionId}.conf`);

/** The NATS ports the stacks are built around (the brief's fixed layout, same in every region). */
export const NATS_CLIENT_PORT = 4222;
export const NATS_ROUTE_PORT = 6222;
export const NATS_LEAF_PORT = 7422;
export const NATS_MONITOR_PORT = 8222;
/** The hub's JetStream domain and cluster name (deploy/README.md, "Topology"). */
export const HUB_DOMAIN = "hub";
export const HUB_CLUSTER = "edgehome-hub";
/** EDGEHOME_SHUTDOWN_TIMEOUT_MS when a service does not set it (app/broker.config.ts). */
const DEFAULT_SHUTDOWN_TIMEOUT_MS = 10_000;

/** The name a region's hub server is dialed at (routes, leaf nodes). */
export const hubHost = (regionId: string) => `hub.${regionId}.edgehome.internal`;
/** The name a region's edge certificate carries, which the hub maps to that region's leaf user. */
export const edgeName = (regionId: string) => `nats.${regionId}.edgehome.internal`;

export interface ComposeService {
	image?: string;
	build?: { context?: string; dockerfile?: string } | string;
	command?: string[] | string;
	environment?: Record<string, unknown> | string[];
	ports?: (string | number | { target?: number; published?: number | string; host_ip?: string })[];
	depends_on?: string[] | Record<string, { condition?: string }>;
	healthcheck?: { test?: string[] | string; disable?: boolean };
	restart?: string;
	stop_grace_period?: string;
	volumes?: (string | { type?: string; source?: string; target?: string })[];
	secrets?: (string | { source?: string; target?: string })[];
	networks?: string[] | Record<string, { aliases?: string[] } | null>;
}

/** A top-level secret: a file outside the repository (`content` would write it into the compose file). */
export interface ComposeSecret {
	file?: string;
	environment?: string;
	content?: string;
	external?: boolean;
}

export interface ComposeFile {
	services?: Record<string, ComposeService>;
	secrets?: Record<string, ComposeSecret>;
	[key: string]: unknown;
}

/** Parses a compose file as Compose does: YAML with merge keys; an error or duplicate key throws. */
export function parseCompose(text: string): ComposeFile {
	const doc = parseDocument(text, { merge: true, uniqueKeys: true });
	const problems = [...doc.errors, ...doc.warnings];
	if (problems.length) throw new Error(problems.map(p => p.message).join("\n"));
	const data = doc.toJS({ maxAliasCount: 100 }) as unknown;
	if (typeof data !== "object" || data === null || Array.isArray(data)) throw new Error("not a YAML mapping");
	return data as ComposeFile;
}

// ---- compose interpolation ----

const REFERENCE = /\$\{([^}]*)\}/g;
const REFERENCE_BODY = /^([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])(.*))?$/s;
/** A value that is nothing but a required-variable reference: `${NAME:?message}`. */
const REQUIRED_REFERENCE = /^\$\{[A-Za-z_][A-Za-z0-9_]*:?\?[^}]*\}$/;
const SECRET_NAME = /PASSWORD|PASSWD|SECRET|TOKEN|_AUTH$|_KEY$/i;

/** The value Compose would hand the container, with every variable replaced by `x` (for parsing URLs). */
export function interpolate(value: string): string {
	// "$$" is an escaped "$": the parts between escapes are interpolated, then joined by the "$" each escape stands for.
	return value
		.split("$$")
		.map(part => part.replace(REFERENCE, "x"))
		.join("$");
}

function environment(svc: ComposeService): Record<string, string> {
	const env = svc.environment;
	if (!env) return {};
	if (Array.isArray(env)) {
		return Object.fromEntries(
			env.map(e => {
				const i = e.indexOf("=");
				return i < 0 ? [e, ""] : [e.slice(0, i), e.slice(i + 1)];
			})
		);
	}
	return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v === null || v === undefined ? "" : String(v)]));
}

function commandArgs(svc: ComposeService): string[] {
	if (!svc.command) return [];
	return Array.isArray(svc.command) ? svc.command.map(String) : svc.command.split(/\s+/).filter(Boolean);
}

function flag(args: string[], name: string): string | undefined {
	for (let i = 0; i < args.length; i++) {
		if (args[i] === name) return args[i + 1];
		if (args[i]!.startsWith(`${name}=`)) return args[i]!.slice(name.length + 1);
	}
	return undefined;
}

/** `30s`, `1m30s`, `500ms` → milliseconds; NaN when it is not a Compose duration. */
export function durationMs(text: string | undefined): number {
	if (!text || !/^(\d+(\.\d+)?(h|m|s|ms|us|ns))+$/.test(text)) return NaN;
	const unit: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1, us: 1e-3, ns: 1e-6 };
	let ms = 0;
	for (const [, n, , u] of text.matchAll(/(\d+(\.\d+)?)(h|ms|m|s|us|ns)/g)) ms += Number(n) * unit[u!]!;
	return ms;
}

/**
 * A host address for the ops port: loopback or private (RFC 1918, IPv6 ULA), or a variable whose
 * default is one; never empty (every interface), 0.0.0.0 or ::.
 */
function privateHostAddress(hostIp: string): boolean {
	const fromVariable = /^\$\{\w+:-([^}]+)\}$/.exec(hostIp);
	const ip = (fromVariable ? fromVariable[1]! : hostIp).replace(/^\[|\]$/g, "");
	return /^(127\.|10\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.)/.test(ip) || ip === "::1" || /^f[cd][0-9a-f]{2}:/i.test(ip);
}

interface Published {
	hostIp: string;
	published: number | undefined;
	target: number;
}

function publishedPorts(svc: ComposeService): Published[] {
	return (svc.ports ?? []).map(p => {
		if (typeof p === "object")
			return { hostIp: p.host_ip ?? "", published: p.published === undefined ? undefined : Number(p.published), target: Number(p.target) };
		const [spec] = String(p).split("/");
		const parts = spec!.split(":");
		const target = Number(parts.pop());
		const published = parts.length ? Number(parts.pop()) : undefined;
		return { hostIp: parts.join(":"), published, target };
	});
}

function volumeMounts(svc: ComposeService): { source: string; target: string }[] {
	return (svc.volumes ?? []).map(v => {
		if (typeof v === "object") return { source: v.source ?? "", target: v.target ?? "" };
		const [source = "", target = ""] = v.split(":");
		return { source, target };
	});
}

function dependsOn(svc: ComposeService): Record<string, string | undefined> {
	const d = svc.depends_on;
	if (!d) return {};
	if (Array.isArray(d)) return Object.fromEntries(d.map(name => [name, undefined]));
	return Object.fromEntries(Object.entries(d).map(([name, v]) => [name, v?.condition]));
}

/** Where a compose secret lands in the container: `target` if absolute, else under /run/secrets. */
function secretMounts(svc: ComposeService): { source: string; target: string }[] {
	return (svc.secrets ?? []).map(s => {
		const { source = "", target } = typeof s === "string" ? { source: s, target: undefined } : s;
		const path = target ?? source;
		return { source, target: path.startsWith("/") ? path : `/run/secrets/${path}` };
	});
}

function networkAliases(svc: ComposeService): string[] {
	const networks = svc.networks;
	if (!networks || Array.isArray(networks)) return [];
	return Object.values(networks).flatMap(n => n?.aliases ?? []);
}

function hasHealthcheck(svc: ComposeService | undefined): boolean {
	const test = svc?.healthcheck?.test;
	if (!test || svc?.healthcheck?.disable) return false;
	const first = Array.isArray(test) ? test[0] : test;
	return first !== "NONE";
}

/** Services built from deploy/Dockerfile: the edgehome service groups. */
export function edgehomeServices(compose: ComposeFile, file: string): [string, ComposeService][] {
	return Object.entries(compose.services ?? {}).filter(([, svc]) => {
		if (!svc.build) return false;
		const build = typeof svc.build === "string" ? { context: svc.build } : svc.build;
		const context = resolve(dirname(file), build.context ?? ".");
		return resolve(context, build.dockerfile ?? "Dockerfile") === DOCKERFILE;
	});
}

function urlOf(value: string | undefined): URL | undefined {
	if (!value) return undefined;
	try {
		return new URL(interpolate(value));
	} catch {
		return undefined;
	}
}

/** Everything the stack of `region` must get right, given the service names the launcher knows. */
export function checkCompose(region: RegionDefinition, compose: ComposeFile, file: string, knownServices: string[], rawText: string): string[] {
	const problems: string[] = [];
	const services = compose.services ?? {};
	const groups = edgehomeServices(compose, file);
	if (groups.length === 0) problems.push("no service is built from deploy/Dockerfile");
	const metricsPort = region.ports.metrics;
	const database = new URL(region.endpoints.mysql).pathname.slice(1);
	const seen = { group: new Map<string, string>(), nodeID: new Map<string, string>() };

	for (const [name, svc] of groups) {
		const at = `service ${name}`;
		const args = commandArgs(svc);
		const regionArg = flag(args, "--region");
		if (regionArg !== region.id) problems.push(`${at}: runs --region ${regionArg ?? "(none)"}, not ${region.id}`);
		const list = flag(args, "--services");
		const names = list
			? list
					.split(",")
					.map(s => s.trim())
					.filter(Boolean)
			: [];
		if (names.length === 0) problems.push(`${at}: names no --services (it would run every service)`);
		for (const s of names) if (!knownServices.includes(s)) problems.push(`${at}: --services names "${s}", which services/index.ts does not have`);

		const env = environment(svc);
		const stores: [string, string, string[]][] = [
			["EDGEHOME_NATS_URL", "NATS", ["nats:"]],
			["EDGEHOME_MYSQL_URL", "MySQL", ["mysql:"]],
			["EDGEHOME_REDIS_URL", "Redis", ["redis:", "rediss:"]]
		];
		const storeHosts: string[] = [];
		for (const [variable, what, protocols] of stores) {
			const url = urlOf(env[variable]);
			if (!url) {
				problems.push(`${at}: ${variable} is ${env[variable] ? "not a URL" : "not set"} (the ${what} URL of the region file would be used)`);
				continue;
			}
			if (!protocols.includes(url.protocol)) problems.push(`${at}: ${variable} has protocol ${url.protocol}, expected ${protocols.join(" or ")}`);
			if (!services[url.hostname]) problems.push(`${at}: ${variable} points at "${url.hostname}", which is no service of this file`);
			else storeHosts.push(url.hostname);
			if (variable === "EDGEHOME_NATS_URL" && Number(url.port || NATS_CLIENT_PORT) !== NATS_CLIENT_PORT)
				problems.push(`${at}: ${variable} uses port ${url.port}, NATS listens on ${NATS_CLIENT_PORT}`);
			if (variable === "EDGEHOME_MYSQL_URL" && url.pathname.slice(1) !== database)
				problems.push(`${at}: ${variable} names database "${url.pathname.slice(1)}", the region file says "${database}"`);
		}

		// sv-log's production store: the region's MongoDB database, in a container of this file.
		if (names.includes("sv-log") && env.EDGEHOME_LOG_STORE === "mongodb") {
			const mongo = urlOf(env.EDGEHOME_LOG_MONGO_URL);
			const database = new URL(region.endpoints.mongo).pathname.slice(1);
			if (!mongo) problems.push(`${at}: EDGEHOME_LOG_MONGO_URL is ${env.EDGEHOME_LOG_MONGO_URL ? "not a URL" : "not set"} (sv-log's MongoDB)`);
			else if (!services[mongo.hostname]) problems.push(`${at}: EDGEHOME_LOG_MONGO_URL points at "${mongo.hostname}", which is no service of this file`);
			else {
				storeHosts.push(mongo.hostname);
				if (mongo.pathname.slice(1) !== database)
					problems.push(`${at}: EDGEHOME_LOG_MONGO_URL names database "${mongo.pathname.slice(1)}", the region file says "${database}"`);
			}
		} else if (names.includes("sv-log")) problems.push(`${at}: runs sv-log without EDGEHOME_LOG_STORE=mongodb (its production store)`);
		problems.push(...checkOtlpUrl(at, env.EDGEHOME_OTLP_URL, compose, file));

		const deps = dependsOn(svc);
		for (const host of new Set(storeHosts)) {
			if (deps[host] !== "service_healthy") problems.push(`${at}: does not depend on ${host} with condition service_healthy`);
			if (!hasHealthcheck(services[host])) problems.push(`${at}: depends on ${host}, which has no healthcheck`);
		}
		for (const [dep, condition] of Object.entries(deps)) {
			if (!services[dep]) problems.push(`${at}: depends on "${dep}", which is no service of this file`);
			else if (condition !== "service_healthy") problems.push(`${at}: depends on ${dep} without condition service_healthy`);
		}

		if (env.EDGEHOME_METRICS_PORT !== String(metricsPort))
			problems.push(
				`${at}: EDGEHOME_METRICS_PORT is ${env.EDGEHOME_METRICS_PORT || "(not set)"}, the region's metrics port is ${metricsPort} (the image's healthcheck reads it)`
			);
		if (!publishedPorts(svc).some(p => p.target === metricsPort && p.published === metricsPort))
			problems.push(`${at}: does not publish the region's metrics port ${metricsPort}:${metricsPort}`);
		for (const p of publishedPorts(svc).filter(p => p.target === metricsPort && !privateHostAddress(p.hostIp)))
			problems.push(`${at}: publishes the ops port ${metricsPort} on ${p.hostIp || "every interface"}, not on a loopback or private address`);
		if (!/^\$\{EDGEHOME_OPS_TOKEN:\?[^}]*\}$/.test(env.EDGEHOME_OPS_TOKEN ?? ""))
			problems.push(`${at}: EDGEHOME_OPS_TOKEN is not a required \${EDGEHOME_OPS_TOKEN:?…} reference (the ops port needs its token)`);

		const group = env.EDGEHOME_GROUP;
		if (!group) problems.push(`${at}: EDGEHOME_GROUP is not set`);
		else if (seen.group.has(group)) problems.push(`${at}: EDGEHOME_GROUP "${group}" is also ${seen.group.get(group)}'s`);
		else seen.group.set(group, name);
		const nodeID = env.EDGEHOME_NODE_ID;
		if (nodeID && seen.nodeID.has(nodeID)) problems.push(`${at}: EDGEHOME_NODE_ID "${nodeID}" is also ${seen.nodeID.get(nodeID)}'s`);
		else if (nodeID) seen.nodeID.set(nodeID, name);

		const shutdownMs = env.EDGEHOME_SHUTDOWN_TIMEOUT_MS ? Number(env.EDGEHOME_SHUTDOWN_TIMEOUT_MS) : DEFAULT_SHUTDOWN_TIMEOUT_MS;
		const graceMs = durationMs(svc.stop_grace_period);
		if (!(graceMs > shutdownMs))
			problems.push(`${at}: stop_grace_period ${svc.stop_grace_period ?? "(default 10s)"} is not longer than EDGEHOME_SHUTDOWN_TIMEOUT_MS ${shutdownMs}`);
		if (env.EDGEHOME_LOG_FORMAT !== "json") problems.push(`${at}: EDGEHOME_LOG_FORMAT is not json`);
	}

	const endpoints = new Map<string, string>();
	for (const [name, svc] of Object.entries(services)) {
		if (!svc.restart || svc.restart === "no") problems.push(`service ${name}: has no restart policy`);
		// A container without a shell or client to probe itself with says so (`disable: true`); nothing may wait for it.
		if (!groups.some(([g]) => g === name) && !hasHealthcheck(svc) && !svc.healthcheck?.disable)
			problems.push(`service ${name}: has no healthcheck (or an explicit disable: true)`);
		for (const p of publishedPorts(svc)) {
			if (p.published === undefined) continue;
			const key = `${p.hostIp || "0.0.0.0"}:${p.published}`;
			const other = endpoints.get(key);
			if (other) problems.push(`service ${name}: publishes ${key}, as ${other} already does`);
			endpoints.set(key, name);
		}
	}

	problems.push(...checkSecrets(compose, rawText));
	return problems;
}

/** No password, token or secret is written into the file: each is a required `${VAR:?…}` reference. */
export function checkSecrets(compose: ComposeFile, rawText: string): string[] {
	const problems: string[] = [];
	for (const [, body] of rawText.matchAll(REFERENCE)) {
		const m = REFERENCE_BODY.exec(body!);
		if (!m) {
			problems.push(`"\${${body}}" is not a valid variable reference`);
			continue;
		}
		const [, name, modifier] = m;
		if (SECRET_NAME.test(name!) && modifier !== ":?" && modifier !== "?")
			problems.push(`\${${body}}: a secret must be required (\${${name}:?…}), never defaulted or optional`);
	}
	for (const [name, svc] of Object.entries(compose.services ?? {})) {
		for (const [key, value] of Object.entries(environment(svc))) {
			if (/ALLOW_EMPTY|RANDOM_ROOT/i.test(key) && value && !/^(0|no|false)$/i.test(value))
				problems.push(`service ${name}: ${key} leaves a password empty or unknown`);
			else if (/_FILE$/.test(key) && SECRET_NAME.test(key.replace(/_+FILE$/, ""))) {
				// The program reads the secret from a file: it must be one of the service's compose secrets.
				if (!secretMounts(svc).some(m => m.target === value)) problems.push(`service ${name}: ${key} is ${value}, which is none of its secrets`);
			} else if (SECRET_NAME.test(key) && !REQUIRED_REFERENCE.test(value)) problems.push(`service ${name}: ${key} is not a \${VAR:?…} reference`);
		}
		for (const { source } of secretMounts(svc))
			if (!compose.secrets?.[source]) problems.push(`service ${name}: uses secret "${source}", which the file does not define`);
		const args = commandArgs(svc);
		args.forEach((arg, i) => {
			const inline = /^--?[\w-]*(pass|secret|token|auth)[\w-]*=(.*)$/i.exec(arg);
			const value = inline ? inline[2]! : /^--?[\w-]*(pass|secret|token|auth)[\w-]*$/i.test(arg) ? args[i + 1] : undefined;
			if (value !== undefined && !REQUIRED_REFERENCE.test(value)) problems.push(`service ${name}: command argument ${arg} is not given a \${VAR:?…} reference`);
		});
	}
	for (const [name, secret] of Object.entries(compose.secrets ?? {})) {
		if (secret.content !== undefined) problems.push(`secret ${name}: its content is written in the file`);
		else if (secret.environment !== undefined) {
			if (!/^\w+$/.test(secret.environment)) problems.push(`secret ${name}: environment "${secret.environment}" is not a variable name`);
		} else if (!secret.external && !/^\$\{[A-Za-z_][A-Za-z0-9_]*:?\?[^}]*\}\//.test(secret.file ?? ""))
			problems.push(`secret ${name}: file ${secret.file ?? "(none)"} is not under a required \${VAR:?…} folder (outside the repository)`);
	}
	walkStrings(compose, text => {
		// A reference's message may hold spaces, so `${…}` is matched whole inside the password.
		for (const [, password] of text.matchAll(/[a-z][a-z0-9+.-]*:\/\/[^/\s:@]*:((?:\$\{[^}]*\}|[^@\s/])*)@/gi))
			if (!REQUIRED_REFERENCE.test(password!)) problems.push(`URL "${text}" holds a password that is not a \${VAR:?…} reference`);
	});
	return problems;
}

function walkStrings(value: unknown, visit: (text: string) => void): void {
	if (typeof value === "string") visit(value);
	else if (Array.isArray(value)) for (const v of value) walkStrings(v, visit);
	else if (typeof value === "object" && value !== null) for (const v of Object.values(value)) walkStrings(v, visit);
}

// ---- observability: Prometheus, Grafana, the OpenTelemetry collector ----

export const PROMETHEUS_CONFIG = join(DEPLOY, "prometheus", "prometheus.yml");
export const GRAFANA = join(DEPLOY, "grafana");
export const COLLECTOR_CONFIG = join(DEPLOY, "otel", "collector.yaml");
/** Where Grafana's image reads its provisioning. */
const GRAFANA_PROVISIONING = "/etc/grafana/provisioning";

/** The service of a compose file that mounts `path` (a file or folder of the repository), with the path it is mounted at. */
function mountOf(compose: ComposeFile, file: string, path: string): { name: string; svc: ComposeService; target: string } | undefined {
	for (const [name, svc] of Object.entries(compose.services ?? {})) {
		const mount = volumeMounts(svc).find(m => m.source.startsWith(".") && resolve(dirname(file), m.source) === path);
		if (mount) return { name, svc, target: mount.target };
	}
	return undefined;
}

function configFlag(svc: ComposeService, name: string): string | undefined {
	return flag(commandArgs(svc), name);
}

type Yaml = Record<string, unknown>;
const isMap = (v: unknown): v is Yaml => typeof v === "object" && v !== null && !Array.isArray(v);
const mapAt = (v: unknown, ...path: string[]): Yaml | undefined => {
	let at = v;
	for (const key of path) at = isMap(at) ? at[key] : undefined;
	return isMap(at) ? at : undefined;
};

/** The OTLP/HTTP port the collector listens on, from its config's otlp receiver. */
export function collectorHttpPort(config: unknown): number | undefined {
	const endpoint = mapAt(config, "receivers", "otlp", "protocols", "http")?.endpoint;
	return typeof endpoint === "string" ? portOf(endpoint) : undefined;
}

/** The variables the collector's config reads (`${env:NAME}`). */
export function collectorVariables(configText: string): string[] {
	return [...new Set([...configText.matchAll(/\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}/g)].map(m => m[1]!))].sort();
}

/**
 * The collector's config: OTLP/HTTP on every interface of its container, one traces pipeline whose
 * every component is defined, memory_limiter first, and no component defined but unused.
 */
export function checkCollectorConfig(config: unknown): string[] {
	const problems: string[] = [];
	const endpoint = mapAt(config, "receivers", "otlp", "protocols", "http")?.endpoint;
	if (typeof endpoint !== "string") problems.push("receivers.otlp.protocols.http has no endpoint: no OTLP/HTTP receiver");
	else if (!/^(0\.0\.0\.0|\[::\]):\d+$/.test(endpoint))
		problems.push(`the OTLP/HTTP receiver listens on ${endpoint}, which the services in other containers cannot reach`);
	const pipelines = mapAt(config, "service", "pipelines") ?? {};
	if (!mapAt(pipelines, "traces")) problems.push("service.pipelines has no traces pipeline");
	const used: Record<"receivers" | "processors" | "exporters", Set<string>> = { receivers: new Set(), processors: new Set(), exporters: new Set() };
	for (const [name, pipeline] of Object.entries(pipelines)) {
		for (const kind of ["receivers", "processors", "exporters"] as const) {
			const list = isMap(pipeline) && Array.isArray(pipeline[kind]) ? (pipeline[kind] as string[]) : [];
			if (kind !== "processors" && list.length === 0) problems.push(`pipeline ${name} has no ${kind}`);
			for (const component of list) {
				used[kind].add(component);
				if (!mapAt(config, kind) || !(component in mapAt(config, kind)!))
					problems.push(`pipeline ${name} uses ${kind.slice(0, -1)} ${component}, which is not defined`);
			}
			if (kind === "processors" && list.length && list[0] !== "memory_limiter") problems.push(`pipeline ${name} does not start with memory_limiter`);
		}
	}
	for (const kind of ["receivers", "processors", "exporters"] as const)
		for (const component of Object.keys(mapAt(config, kind) ?? {}))
			if (!used[kind].has(component)) problems.push(`${kind.slice(0, -1)} ${component} is defined but in no pipeline`);
	const extensions = mapAt(config, "service") && Array.isArray(mapAt(config, "service")!.extensions) ? (mapAt(config, "service")!.extensions as string[]) : [];
	for (const e of extensions) if (!mapAt(config, "extensions") || !(e in mapAt(config, "extensions")!)) problems.push(`extension ${e} is not defined`);
	return problems;
}

/** EDGEHOME_OTLP_URL of a group: the collector of this file, on its OTLP/HTTP port, the traces path. */
function checkOtlpUrl(at: string, value: string | undefined, compose: ComposeFile, file: string): string[] {
	if (!value) return [`${at}: EDGEHOME_OTLP_URL is not set: it sends no spans`];
	const url = urlOf(value);
	if (!url) return [`${at}: EDGEHOME_OTLP_URL is not a URL`];
	const collector = mountOf(compose, file, COLLECTOR_CONFIG);
	if (!collector) return [`${at}: EDGEHOME_OTLP_URL has no collector to point at: no service mounts deploy/otel/collector.yaml`];
	const problems: string[] = [];
	if (url.hostname !== collector.name) problems.push(`${at}: EDGEHOME_OTLP_URL points at "${url.hostname}", not the collector ${collector.name}`);
	const port = collectorHttpPort(parseDocument(readFileSync(COLLECTOR_CONFIG, "utf8")).toJS());
	if (Number(url.port) !== port)
		problems.push(`${at}: EDGEHOME_OTLP_URL uses port ${url.port || "(default)"}, the collector's OTLP/HTTP receiver is on ${port}`);
	if (url.pathname !== "/v1/traces") problems.push(`${at}: EDGEHOME_OTLP_URL's path is ${url.pathname}, OTLP/HTTP takes traces on /v1/traces`);
	return problems;
}

export interface ObservabilityFiles {
	/** deploy/prometheus/prometheus.yml, parsed. */
	prometheus: unknown;
	/** deploy/grafana/provisioning/datasources/*.yml and dashboards/*.yml, parsed. */
	datasources: unknown[];
	dashboardProviders: unknown[];
	/** deploy/otel/collector.yaml, as text. */
	collector: string;
}

/** Reads what a stack's Prometheus, Grafana and collector are given. */
export function readObservabilityFiles(): ObservabilityFiles {
	const yamlIn = (dir: string) =>
		readdirSync(dir)
			.filter(f => /\.ya?ml$/.test(f))
			.map(f => parseDocument(readFileSync(join(dir, f), "utf8")).toJS() as unknown);
	return {
		prometheus: parseDocument(readFileSync(PROMETHEUS_CONFIG, "utf8")).toJS(),
		datasources: yamlIn(join(GRAFANA, "provisioning", "datasources")),
		dashboardProviders: yamlIn(join(GRAFANA, "provisioning", "dashboards")),
		collector: readFileSync(COLLECTOR_CONFIG, "utf8")
	};
}

const onEveryInterface = (svc: ComposeService) => publishedPorts(svc).filter(p => p.published !== undefined && !privateHostAddress(p.hostIp));

/**
 * What watches a region's stack: a Prometheus on deploy/prometheus (its rules, the ops token as a
 * secret where the config reads it, this region's groups reachable at the names it scrapes), a
 * Grafana on deploy/grafana (the dashboards where the provider reads them, a datasource that is this
 * Prometheus, an admin password that is a secret) and a collector on deploy/otel/collector.yaml with
 * every variable it reads. None of them is published on every interface.
 */
export function checkObservability(region: RegionDefinition, compose: ComposeFile, file: string, files: ObservabilityFiles): string[] {
	const problems: string[] = [];
	const services = compose.services ?? {};

	const prometheus = mountOf(compose, file, PROMETHEUS_CONFIG);
	if (!prometheus) problems.push("no service mounts deploy/prometheus/prometheus.yml");
	else {
		const at = `service ${prometheus.name}`;
		const configPath = configFlag(prometheus.svc, "--config.file") ?? "/etc/prometheus/prometheus.yml";
		if (configPath !== prometheus.target) problems.push(`${at}: mounts prometheus.yml at ${prometheus.target} but reads ${configPath}`);
		const ruleFiles = (isMap(files.prometheus) && Array.isArray(files.prometheus.rule_files) ? files.prometheus.rule_files : []) as string[];
		for (const pattern of ruleFiles) {
			const folder = dirname(pattern);
			const source = join(dirname(PROMETHEUS_CONFIG), folder);
			const mounted = volumeMounts(prometheus.svc).find(m => m.source.startsWith(".") && resolve(dirname(file), m.source) === source);
			if (mounted?.target !== join(dirname(configPath), folder))
				problems.push(`${at}: does not mount deploy/prometheus/${folder} beside its config (rule_files ${pattern})`);
		}
		const scrapes = (isMap(files.prometheus) && Array.isArray(files.prometheus.scrape_configs) ? files.prometheus.scrape_configs : []) as Yaml[];
		for (const scrape of scrapes) {
			const credentials = mapAt(scrape, "authorization")?.credentials_file;
			if (typeof credentials === "string" && !secretMounts(prometheus.svc).some(m => m.target === credentials))
				problems.push(`${at}: job ${String(scrape.job_name)} reads its token from ${credentials}, which no secret of the service is mounted at`);
		}
		for (const target of scrapeTargets(files.prometheus).filter(t => t.labels.region === region.id)) {
			const host = target.address.replace(/:\d+$/, "");
			const group = edgehomeServices(compose, file).find(([, svc]) => environment(svc).EDGEHOME_GROUP === target.labels.group);
			if (group && !networkAliases(group[1]).includes(host))
				problems.push(`service ${group[0]}: is scraped at ${host}, which is not one of its network aliases (so not reachable inside the stack)`);
		}
	}

	const provisioning = mountOf(compose, file, join(GRAFANA, "provisioning"));
	if (!provisioning) problems.push("no service mounts deploy/grafana/provisioning");
	else {
		const at = `service ${provisioning.name}`;
		if (provisioning.target !== GRAFANA_PROVISIONING)
			problems.push(`${at}: mounts the provisioning at ${provisioning.target}, Grafana reads ${GRAFANA_PROVISIONING}`);
		const dashboards = mountOf(compose, file, join(GRAFANA, "dashboards"));
		const paths = files.dashboardProviders.flatMap(p => (isMap(p) && Array.isArray(p.providers) ? p.providers : []).map(v => mapAt(v, "options")?.path));
		for (const path of paths)
			if (dashboards?.name !== provisioning.name || dashboards.target !== path)
				problems.push(`${at}: does not mount deploy/grafana/dashboards at ${String(path)}, where its dashboard provider reads them`);
		for (const ds of files.datasources.flatMap(d => (isMap(d) && Array.isArray(d.datasources) ? d.datasources : [])) as Yaml[]) {
			const url = typeof ds.url === "string" ? urlOf(ds.url) : undefined;
			if (!url || !prometheus || url.hostname !== prometheus.name)
				problems.push(`${at}: datasource ${String(ds.name)} is at ${String(ds.url)}, which is not this stack's Prometheus service`);
		}
		const env = environment(provisioning.svc);
		if (!env.GF_SECURITY_ADMIN_PASSWORD && !env.GF_SECURITY_ADMIN_PASSWORD__FILE)
			problems.push(`${at}: sets no admin password (Grafana's default is admin/admin)`);
	}

	const collector = mountOf(compose, file, COLLECTOR_CONFIG);
	if (!collector) problems.push("no service mounts deploy/otel/collector.yaml");
	else {
		const at = `service ${collector.name}`;
		if (configFlag(collector.svc, "--config") !== collector.target) problems.push(`${at}: does not start with --config=${collector.target}`);
		const env = environment(collector.svc);
		for (const variable of collectorVariables(files.collector))
			if (!env[variable]) problems.push(`${at}: the config reads \${env:${variable}}, which the service does not set`);
		if (dependedOn(compose, collector.name)) problems.push(`${at}: a group waits for it, so a collector down would stop the region`);
	}

	for (const name of [prometheus?.name, provisioning?.name, collector?.name])
		for (const p of name ? onEveryInterface(services[name]!) : [])
			problems.push(`service ${name}: publishes ${p.published} on ${p.hostIp || "every interface"}, not on a loopback or private address`);
	for (const [name, svc] of Object.entries(services))
		if (svc.healthcheck?.disable && dependedOn(compose, name)) problems.push(`service ${name}: has its healthcheck disabled, yet a service waits for it`);
	return problems;
}

function dependedOn(compose: ComposeFile, name: string): boolean {
	return Object.values(compose.services ?? {}).some(svc => name in dependsOn(svc));
}

// ---- NATS ----

function str(v: NatsValue | undefined): string | undefined {
	return typeof v === "string" ? v : undefined;
}

/** `port: 6222`, as the Helm chart writes it beside `listen`. */
function numberOf(v: NatsValue | undefined): number | undefined {
	return typeof v === "string" && /^\d+$/.test(v) ? Number(v) : undefined;
}

function portOf(listen: string | undefined): number | undefined {
	const m = listen ? /(?:^|:)(\d+)$/.exec(listen) : null;
	return m ? Number(m[1]) : undefined;
}

/** What every shipped server config has: a name, the client and monitoring ports, JetStream in the given domain. */
function checkServerBasics(conf: NatsMap, domain: string): string[] {
	const problems: string[] = [];
	if (!str(conf.server_name)) problems.push("server_name is not set");
	const client = portOf(str(conf.listen)) ?? (conf.port === undefined ? NATS_CLIENT_PORT : Number(str(conf.port)));
	if (client !== NATS_CLIENT_PORT) problems.push(`clients listen on ${client}, not ${NATS_CLIENT_PORT}`);
	const monitor = portOf(str(conf.http)) ?? (conf.http_port === undefined ? undefined : Number(str(conf.http_port)));
	if (monitor !== NATS_MONITOR_PORT) problems.push(`monitoring is on ${monitor ?? "(off)"}, not ${NATS_MONITOR_PORT}`);
	if (!isNatsMap(conf.jetstream) || !str(conf.jetstream.store_dir)) problems.push("jetstream { store_dir } is not set");
	else if (str(conf.jetstream.domain) !== domain) problems.push(`JetStream domain is ${str(conf.jetstream.domain) ?? "(none)"}, not ${domain}`);
	if (conf.gateway !== undefined) problems.push("has a gateway block: regions meet in the hub, through leaf nodes");
	return problems;
}

const listOf = (v: NatsValue | undefined): (string | undefined)[] => (Array.isArray(v) ? v.map(str) : []);

/** Checks one region's edge server config: its own JetStream domain, a leaf node of every hub server, its own first. */
export function checkNatsConf(regionId: string, allRegionIds: string[], conf: NatsMap): string[] {
	const problems = checkServerBasics(conf, regionId);
	// One server, or a cluster of three or more (Kubernetes, deploy/k8s/nats): JetStream needs a quorum.
	const routes = isNatsMap(conf.cluster) ? listOf(conf.cluster.routes) : [];
	if (conf.cluster !== undefined && routes.length < 3)
		problems.push(`has a cluster block of ${routes.length} server(s): a cluster of fewer than three never keeps a JetStream quorum through a restart`);
	const remotes = isNatsMap(conf.leafnodes) && Array.isArray(conf.leafnodes.remotes) ? conf.leafnodes.remotes.filter(isNatsMap) : [];
	if (remotes.length !== 1) return [...problems, `has ${remotes.length} leaf-node remotes, not one (to the hub)`];
	const remote = remotes[0]!;
	const url = (id: string) => `nats-leaf://${hubHost(id)}:${NATS_LEAF_PORT}`;
	const urls = listOf(remote.urls);
	if (urls[0] !== url(regionId)) problems.push(`the leaf-node remote dials ${urls[0] ?? "nothing"} first, not its own region's hub server ${url(regionId)}`);
	for (const id of allRegionIds) if (!urls.includes(url(id))) problems.push(`the leaf-node remote does not dial the hub server of ${id}`);
	if (urls.length !== allRegionIds.length) problems.push(`the leaf-node remote dials ${urls.length} servers for ${allRegionIds.length} regions`);
	if (str(remote.no_randomize) !== "true") problems.push("the leaf-node remote may dial another region's hub server first (no_randomize is not true)");
	if (!isNatsMap(remote.tls)) problems.push("the leaf-node remote has no tls block");
	return problems;
}

/** Checks one region's hub server config: domain hub, routes to every hub server, a leaf-node port that maps each region's edge certificate. */
export function checkHubConf(regionId: string, allRegionIds: string[], conf: NatsMap): string[] {
	const problems = checkServerBasics(conf, HUB_DOMAIN);
	if (str(conf.server_name) !== `hub-${regionId}`) problems.push(`server_name is ${str(conf.server_name) ?? "(none)"}, not hub-${regionId}`);
	const cluster = conf.cluster;
	if (!isNatsMap(cluster)) problems.push("has no cluster block");
	else {
		if (str(cluster.name) !== HUB_CLUSTER) problems.push(`cluster name is ${str(cluster.name) ?? "(none)"}, not ${HUB_CLUSTER}`);
		if ((portOf(str(cluster.listen)) ?? numberOf(cluster.port)) !== NATS_ROUTE_PORT)
			problems.push(`routes listen on ${str(cluster.listen) ?? str(cluster.port) ?? "(nothing)"}, not port ${NATS_ROUTE_PORT}`);
		if (str(cluster.advertise) !== `${hubHost(regionId)}:${NATS_ROUTE_PORT}`)
			problems.push(`cluster advertises ${str(cluster.advertise) ?? "nothing"}, but the other hub servers dial ${hubHost(regionId)}:${NATS_ROUTE_PORT}`);
		const routes = listOf(cluster.routes);
		for (const id of allRegionIds)
			if (!routes.includes(`nats-route://${hubHost(id)}:${NATS_ROUTE_PORT}`)) problems.push(`lists no route to the hub server of ${id}`);
		if (routes.length !== allRegionIds.length) problems.push(`lists ${routes.length} routes for ${allRegionIds.length} regions`);
	}
	const leaf = conf.leafnodes;
	if (!isNatsMap(leaf)) return [...problems, "has no leafnodes block"];
	if ((portOf(str(leaf.listen)) ?? numberOf(leaf.port)) !== NATS_LEAF_PORT)
		problems.push(`leaf nodes listen on ${str(leaf.listen) ?? str(leaf.port) ?? "(nothing)"}, not port ${NATS_LEAF_PORT}`);
	const tls = isNatsMap(leaf.tls) ? leaf.tls : undefined;
	if (str(tls?.verify_and_map) !== "true") problems.push("leaf nodes are not authenticated by their certificate (tls verify_and_map)");
	const users =
		isNatsMap(leaf.authorization) && Array.isArray(leaf.authorization.users) ? leaf.authorization.users.filter(isNatsMap).map(u => str(u.user)) : [];
	const expected = allRegionIds.map(edgeName);
	if (users.slice().sort().join(" ") !== expected.slice().sort().join(" "))
		problems.push(`leaf users are ${users.join(", ") || "none"}, not the regions' edges ${expected.join(", ")}`);
	return problems;
}

/** The service of a compose file that mounts `confPath`, with its name. */
function natsServiceOf(compose: ComposeFile, file: string, confPath: string): [string, ComposeService] | undefined {
	return Object.entries(compose.services ?? {}).find(([, svc]) => volumeMounts(svc).some(m => resolve(dirname(file), m.source) === confPath));
}

/** A NATS service started from `confPath`, its JetStream on a volume, probed on its monitoring port. */
function checkNatsServer(at: string, svc: ComposeService, file: string, confPath: string, conf: NatsMap): string[] {
	const problems: string[] = [];
	const mounts = volumeMounts(svc);
	const confMount = mounts.find(m => resolve(dirname(file), m.source) === confPath)!;
	if (flag(commandArgs(svc), "--config") !== confMount.target && flag(commandArgs(svc), "-c") !== confMount.target)
		problems.push(`${at}: does not start with --config ${confMount.target}`);
	for (const m of mounts)
		if (m.source.endsWith(".conf") && resolve(dirname(file), m.source) !== confPath && !SHARED_NATS_CONFS.includes(basename(m.source)))
			problems.push(`${at}: mounts ${m.source}, another server's config`);
	const storeDir = isNatsMap(conf.jetstream) ? str(conf.jetstream.store_dir) : undefined;
	if (storeDir && !mounts.some(m => m !== confMount && (storeDir === m.target || storeDir.startsWith(`${m.target}/`))))
		problems.push(`${at}: JetStream's store_dir ${storeDir} is on no volume, so it is lost with the container`);
	const test = svc.healthcheck?.test;
	const healthcheck = Array.isArray(test) ? test.join(" ") : (test ?? "");
	if (!healthcheck.includes(`:${NATS_MONITOR_PORT}/`)) problems.push(`${at}: healthcheck does not probe the monitoring port ${NATS_MONITOR_PORT}`);
	return problems;
}

/** What ties a region's compose file to its NATS configs: the groups' edge server and the hub server, the right files mounted, ports, storage. */
export function checkNatsService(regionId: string, compose: ComposeFile, file: string, conf: NatsMap, hubConf: NatsMap): string[] {
	const problems: string[] = [];
	const groups = edgehomeServices(compose, file);
	const hosts = new Set(groups.map(([, svc]) => urlOf(environment(svc).EDGEHOME_NATS_URL)?.hostname).filter(h => h !== undefined));
	if (hosts.size !== 1) return [`the service groups do not agree on one NATS service (${[...hosts].join(", ") || "none"})`];
	const [name] = hosts;
	const svc = compose.services?.[name!];
	if (!svc) return [];
	if (!volumeMounts(svc).some(m => resolve(dirname(file), m.source) === natsConfPath(regionId)))
		problems.push(`service ${name}: does not mount deploy/nats/${regionId}.conf`);
	else problems.push(...checkNatsServer(`service ${name}`, svc, file, natsConfPath(regionId), conf));
	const hub = natsServiceOf(compose, file, hubConfPath(regionId));
	if (!hub) return [...problems, `no service mounts deploy/nats/hub-${regionId}.conf: the region has no hub server`];
	const [hubName, hubSvc] = hub;
	problems.push(...checkNatsServer(`service ${hubName}`, hubSvc, file, hubConfPath(regionId), hubConf));
	for (const [port, what] of [
		[NATS_ROUTE_PORT, "route port, so no other hub server can connect"],
		[NATS_LEAF_PORT, "leaf-node port, so no region's edge can connect"]
	] as const)
		if (!publishedPorts(hubSvc).some(p => p.target === port && p.published === port)) problems.push(`service ${hubName}: does not publish the ${what}`);
	return problems;
}

/** deploy/nats files every region's server includes (client TLS and users), not a region's config. */
export const SHARED_NATS_CONFS = ["auth.conf"];

export function readNatsConf(regionId: string): NatsMap {
	return parseNatsConf(readFileSync(natsConfPath(regionId), "utf8"));
}

export function readHubConf(regionId: string): NatsMap {
	return parseNatsConf(readFileSync(hubConfPath(regionId), "utf8"));
}

// ---- Dockerfile ----

export interface Dockerfile {
	from: string[];
	user: string | undefined;
	entrypoint: string[];
	healthcheck: string | undefined;
	/** Source paths of every COPY from the build context, relative to the repository root. */
	copied: string[];
}

export function parseDockerfile(text: string): Dockerfile {
	const lines = text
		.replace(/\\\r?\n/g, " ")
		.split(/\r?\n/)
		.map(l => l.trim())
		.filter(l => l && !l.startsWith("#"));
	const result: Dockerfile = { from: [], user: undefined, entrypoint: [], healthcheck: undefined, copied: [] };
	for (const line of lines) {
		const [instruction = "", ...rest] = line.split(/\s+/);
		const args = line.slice(instruction.length).trim();
		switch (instruction.toUpperCase()) {
			case "FROM":
				result.from.push(rest[0] ?? "");
				break;
			case "USER":
				result.user = rest[0];
				break;
			case "ENTRYPOINT":
				result.entrypoint = args.startsWith("[") ? (JSON.parse(args) as string[]) : ["/bin/sh", "-c", args];
				break;
			case "HEALTHCHECK":
				result.healthcheck = args;
				break;
			case "COPY":
			case "ADD": {
				const words = rest.filter(w => !w.startsWith("--"));
				// --from copies out of another stage, not from the context.
				if (rest.some(w => w.startsWith("--from"))) break;
				result.copied.push(...words.slice(0, -1).map(w => w.replace(/^\.\/|\/$/g, "")));
				break;
			}
		}
	}
	return result;
}

/**
 * Every file the program loads from `entry` on (relative imports, followed), and every package
 * it imports. Type-only imports are skipped: type stripping erases them.
 */
export function runtimeImports(entry: string): { files: string[]; packages: string[]; missing: string[] } {
	const files = new Set<string>();
	const packages = new Set<string>();
	const missing: string[] = [];
	const pending: [file: string, importer: string][] = [[resolve(entry), "(entry point)"]];
	while (pending.length) {
		const [file, importer] = pending.pop()!;
		if (files.has(file)) continue;
		if (!existsSync(file)) {
			missing.push(`${relative(ROOT, importer)} imports ${relative(ROOT, file)}, which does not exist`);
			continue;
		}
		files.add(file);
		const text = readFileSync(file, "utf8");
		const specifiers = [
			...[...text.matchAll(/^\s*(?:import|export)\s+(?!type\b)(?:[^"';()=]*?\s+from\s+)?["']([^"']+)["']/gm)].map(m => m[1]!),
			...[...text.matchAll(/\bimport\(\s*["']([^"']+)["']\s*\)/g)].map(m => m[1]!)
		];
		for (const spec of specifiers) {
			if (spec.startsWith(".")) pending.push([resolve(dirname(file), spec), file]);
			else if (!isBuiltin(spec)) packages.add(spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0]!);
		}
	}
	return { files: [...files].map(f => relative(ROOT, f)), packages: [...packages].sort(), missing };
}

/** Problems of the image: entry point, user, healthcheck, and whether the program fits in it. */
export function checkDockerfile(docker: Dockerfile, pkg: { dependencies?: Record<string, string>; engines?: { node?: string } }): string[] {
	const problems: string[] = [];
	const base = docker.from.at(-1) ?? "";
	const major = /^node:(\d+)/.exec(base)?.[1];
	const wanted = /(\d+)/.exec(pkg.engines?.node ?? "")?.[1];
	if (!major) problems.push(`the final stage is built on ${base || "(nothing)"}, not an official node:<major> image`);
	else if (wanted && Number(major) < Number(wanted)) problems.push(`${base} is older than engines.node ${pkg.engines?.node}`);
	if (!docker.user || /^(root|0)(:|$)/.test(docker.user)) problems.push("runs as root (no USER, or USER root)");
	if (!docker.healthcheck?.includes("/healthz") || !docker.healthcheck.includes("EDGEHOME_METRICS_PORT"))
		problems.push("HEALTHCHECK does not probe /healthz on EDGEHOME_METRICS_PORT");

	const [runtime, script] = docker.entrypoint;
	if (runtime !== "node" || !script) {
		problems.push(`ENTRYPOINT is ${JSON.stringify(docker.entrypoint)}, not ["node", "<file>"]`);
		return problems;
	}
	if (!existsSync(join(ROOT, script))) {
		problems.push(`ENTRYPOINT runs ${script}, which does not exist`);
		return problems;
	}
	const inImage = (path: string) => docker.copied.some(c => c === "." || path === c || path.startsWith(`${c}/`));
	const graph = runtimeImports(join(ROOT, script));
	problems.push(...graph.missing);
	for (const f of graph.files) if (!inImage(f.split(sep).join("/"))) problems.push(`${f} is loaded at run time but no COPY puts it in the image`);
	for (const p of graph.packages)
		if (!pkg.dependencies?.[p]) problems.push(`${p} is imported at run time but is not in dependencies (the image installs no devDependencies)`);
	for (const f of ["package.json", "package-lock.json"]) if (!inImage(f)) problems.push(`no COPY puts ${f} in the image`);
	return problems;
}

// ---- Prometheus ----

export interface ScrapeTarget {
	address: string;
	labels: Record<string, string>;
}

export function scrapeTargets(prometheus: unknown): ScrapeTarget[] {
	const configs = (prometheus as { scrape_configs?: { static_configs?: { targets?: string[]; labels?: Record<string, string> }[] }[] }).scrape_configs ?? [];
	return configs.flatMap(c => (c.static_configs ?? []).flatMap(s => (s.targets ?? []).map(address => ({ address, labels: s.labels ?? {} }))));
}

/** The scrape sends the ops port's bearer token, read from a file (never written in the config). */
export function checkScrapeAuthorization(prometheus: unknown): string[] {
	const configs =
		(prometheus as { scrape_configs?: { job_name?: string; authorization?: { type?: string; credentials_file?: string; credentials?: string } }[] })
			.scrape_configs ?? [];
	return configs.flatMap(c => {
		const auth = c.authorization;
		if (auth?.credentials) return [`job ${c.job_name}: the ops token is written in the config; use credentials_file`];
		if ((auth?.type ?? "Bearer") !== "Bearer" || !auth?.credentials_file)
			return [`job ${c.job_name}: sends no bearer token from a credentials_file (/metrics needs EDGEHOME_OPS_TOKEN)`];
		return [];
	});
}

/** Every group of every region is scraped on its region's metrics port, and nothing else is. */
export function checkPrometheus(targets: ScrapeTarget[], groupsByRegion: Map<RegionDefinition, string[]>): string[] {
	const problems: string[] = [];
	const regions = [...groupsByRegion.keys()];
	for (const t of targets) {
		const region = regions.find(r => r.id === t.labels.region);
		if (!region) {
			problems.push(`target ${t.address} has region label "${t.labels.region ?? ""}", which is no region`);
			continue;
		}
		if (portOf(t.address) !== region.ports.metrics)
			problems.push(`target ${t.address} (${region.id}) is not on ${region.id}'s metrics port ${region.ports.metrics}`);
		if (!groupsByRegion.get(region)!.includes(t.labels.group ?? ""))
			problems.push(`target ${t.address} has group label "${t.labels.group ?? ""}", which ${region.id}'s stack does not run`);
	}
	for (const [region, groups] of groupsByRegion)
		for (const group of groups)
			if (!targets.some(t => t.labels.region === region.id && t.labels.group === group)) problems.push(`group ${group} of ${region.id} is not scraped`);
	return problems;
}

/**
 * Every group that runs or calls restricted actions gets EDGEHOME_CAPABILITY_KEYS from a required
 * variable: a node that runs one without its key does not start, one that calls one without it is
 * refused, and a key is never written down. `capabilities`: per known service, the capabilities
 * its node must hold (its restricted actions and events, and those it calls).
 */
export function checkCapabilityKeys(compose: ComposeFile, file: string, capabilities: Record<string, string[]>): string[] {
	const problems: string[] = [];
	for (const [name, svc] of edgehomeServices(compose, file)) {
		// Without --services the launcher runs every service.
		const list = flag(commandArgs(svc), "--services");
		const services = list === undefined ? Object.keys(capabilities) : list.split(",").map(s => s.trim());
		const needed = [...new Set(services.flatMap(s => capabilities[s] ?? []))];
		const keys = environment(svc).EDGEHOME_CAPABILITY_KEYS;
		if (needed.length && !(keys && REQUIRED_REFERENCE.test(keys)))
			problems.push(`service ${name}: needs the keys of ${needed.join(", ")} but gets no required \${EDGEHOME_CAPABILITY_KEYS:?…}`);
	}
	return problems;
}

/** The EDGEHOME_GROUP of each service group in a compose file. */
export function groupNames(compose: ComposeFile, file: string): string[] {
	return edgehomeServices(compose, file).map(([, svc]) => environment(svc).EDGEHOME_GROUP ?? "");
}
