import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseAllDocuments, parseDocument } from "yaml";
import type { RegionDefinition } from "../../../regions/region.ts";
import type { NatsMap, NatsValue } from "./nats-conf.ts";
import { parseNatsConf } from "./nats-conf.ts";
import { checkHubConf, checkNatsConf, collectorHttpPort, DEPLOY, NATS_CLIENT_PORT, NATS_LEAF_PORT, NATS_ROUTE_PORT } from "./stack-checks.ts";

/**
 * Checks of deploy/k8s: the manifests `kubectl kustomize` renders for each region's overlay, and the
 * values each region's NATS servers are installed with (the nats-io/nats Helm chart). Each returns its
 * problems, one readable line each, as stack-checks.ts does for the compose stacks.
 */

export const K8S = join(DEPLOY, "k8s");
export const overlayPath = (regionId: string) => join(K8S, "overlays", regionId);
export const natsValuesPath = (regionId: string) => join(K8S, "nats", `values-${regionId}.yaml`);
export const hubValuesPath = (regionId: string) => join(K8S, "nats", `values-hub-${regionId}.yaml`);
export const namespaceOf = (regionId: string) => `edgehome-${regionId}`;

/**
 * The Secrets the manifests and the NATS values may reference, with their keys: deploy/README.md
 * makes each one with these keys, and nothing else is referenced.
 */
export const SECRETS: Record<string, string[]> = {
	"edgehome-keys": ["EDGEHOME_BLIND_INDEX_KEY", "EDGEHOME_PII_KEYS", "EDGEHOME_CAPABILITY_KEYS", "EDGEHOME_OPS_TOKEN"],
	"edgehome-stores": ["EDGEHOME_MYSQL_URL", "EDGEHOME_REDIS_URL", "EDGEHOME_LOG_MONGO_URL"],
	"nats-passwords": ["service", "ops"],
	"nats-server-tls": ["server.crt", "server.key"],
	"nats-ca": ["ca.crt"]
};

/** What a variable holding a secret is called: it may come only from a Secret. */
const SECRET_NAME = /PASSWORD|SECRET|TOKEN|_KEYS?$|_URL$/;
/** URLs that hold no password, which a ConfigMap may carry. */
const PLAIN_URLS = new Set(["EDGEHOME_NATS_URL", "EDGEHOME_OTLP_URL"]);

// ---- the rendered manifests ----

export type K8sObject = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> } } & Record<
	string,
	unknown
>;

/** `kubectl kustomize <overlay>`: the objects it renders, or its error. */
export function renderOverlay(dir: string): { objects: K8sObject[]; error?: string } {
	const run = spawnSync("kubectl", ["kustomize", dir], { encoding: "utf8" });
	if (run.error || run.status !== 0) return { objects: [], error: (run.stderr || String(run.error)).trim() };
	return { objects: parseAllDocuments(run.stdout).map(d => d.toJS() as K8sObject) };
}

/** kubernetes-models' name of the schema of an apiVersion and kind: `apps/v1` Deployment → IoK8sApiAppsV1Deployment. */
export function schemaName(apiVersion: string, kind: string): string {
	const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["core", apiVersion];
	const head = group!.split(".")[0]!;
	return `IoK8sApi${head[0]!.toUpperCase()}${head.slice(1)}${version![0]!.toUpperCase()}${version!.slice(1)}${kind}`;
}

type Validate = ((data: unknown) => boolean) & { errors?: { instancePath: string; keyword: string; params: Record<string, unknown> }[] | null };

/**
 * Checks one object against the Kubernetes API schema that kubernetes-models bundles (types, required
 * fields, formats such as quantities), and finds the fields the schema does not know. The bundled
 * validators ignore unknown fields, as the API server's non-strict decoding does; a field the
 * validator never reads (watched through a Proxy) is one the schema does not declare, so a misspelt
 * `readinesProbe` is caught rather than silently dropped.
 */
export async function schemaProblems(object: K8sObject): Promise<string[]> {
	const at = `${object.kind}/${object.metadata?.name}`;
	let validate: Validate;
	try {
		validate = (await import(`kubernetes-models/_schemas/${schemaName(object.apiVersion, object.kind)}`)).validate as Validate;
	} catch {
		return [`${at}: no Kubernetes schema for ${object.apiVersion} ${object.kind}`];
	}
	const read = new WeakMap<object, Set<string>>();
	const proxies = new WeakMap<object, object>();
	const watch = (value: unknown): unknown => {
		if (typeof value !== "object" || value === null) return value;
		const cached = proxies.get(value);
		if (cached) return cached;
		const keys = new Set<string>();
		read.set(value, keys);
		const proxy = new Proxy(value, {
			get: (target, key) => {
				if (typeof key === "string") keys.add(key);
				return watch(Reflect.get(target, key));
			},
			has: (target, key) => {
				if (typeof key === "string") keys.add(key);
				return Reflect.has(target, key);
			},
			// A validator that lists the keys (a map, such as labels or resources) accepts any of them.
			ownKeys: target => {
				for (const key of Reflect.ownKeys(target)) if (typeof key === "string") keys.add(key);
				return Reflect.ownKeys(target);
			}
		});
		proxies.set(value, proxy);
		return proxy;
	};
	const problems: string[] = [];
	if (!validate(watch(object)))
		for (const e of validate.errors ?? []) problems.push(`${at}: ${e.instancePath || "/"} fails ${e.keyword} ${JSON.stringify(e.params)}`);
	const unknown = (value: unknown, path: string): void => {
		if (Array.isArray(value)) {
			for (const [i, v] of value.entries()) unknown(v, `${path}/${i}`);
			return;
		}
		if (typeof value !== "object" || value === null) return;
		const keys = read.get(value);
		for (const [key, v] of Object.entries(value)) {
			if (keys && !keys.has(key)) problems.push(`${at}: ${path}/${key} is not a field of the schema`);
			else unknown(v, `${path}/${key}`);
		}
	};
	unknown(object, "");
	return problems;
}

interface Container {
	name: string;
	image?: string;
	args?: string[];
	env?: { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string }; configMapKeyRef?: { name: string; key: string } } }[];
	envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
	ports?: { name?: string; containerPort: number }[];
	livenessProbe?: Probe;
	readinessProbe?: Probe;
	resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
}
interface Probe {
	httpGet?: { path?: string; port?: number | string };
	exec?: { command?: string[] };
}
interface PodSpec {
	containers: Container[];
	volumes?: { name: string; secret?: { secretName: string; items?: { key: string }[] }; configMap?: { name: string } }[];
	topologySpreadConstraints?: { topologyKey: string; labelSelector?: { matchLabels?: Record<string, string> } }[];
}
type Deployment = K8sObject & { spec: { replicas?: number; template: { metadata: { labels: Record<string, string> }; spec: PodSpec } } };
type Pdb = K8sObject & { spec: { selector: { matchLabels?: Record<string, string> }; maxUnavailable?: number | string; minAvailable?: number | string } };
type Service = K8sObject & { spec: { selector?: Record<string, string>; ports: { name?: string; port: number; targetPort?: number | string }[] } };

const matches = (selector: Record<string, string> | undefined, labels: Record<string, string>) =>
	!!selector && Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels[k] === v);

function flag(args: string[], name: string): string | undefined {
	const i = args.indexOf(name);
	return i < 0 ? undefined : args[i + 1];
}

/** A container's environment as the pod gets it: ConfigMaps by value, Secrets' keys as `secret:<name>/<key>`. */
function environmentOf(container: Container, objects: K8sObject[]): Map<string, string> {
	const env = new Map<string, string>();
	for (const from of container.envFrom ?? []) {
		if (from.configMapRef) {
			const cm = objects.find(o => o.kind === "ConfigMap" && o.metadata.name === from.configMapRef!.name) as { data?: Record<string, string> } | undefined;
			for (const [k, v] of Object.entries(cm?.data ?? {})) env.set(k, v);
		}
		if (from.secretRef) for (const k of SECRETS[from.secretRef.name] ?? []) env.set(k, `secret:${from.secretRef.name}/${k}`);
	}
	for (const e of container.env ?? []) {
		const ref = e.valueFrom?.secretKeyRef;
		env.set(e.name, ref ? `secret:${ref.name}/${ref.key}` : (e.value ?? ""));
	}
	return env;
}

/** The port a probe or Service names, as a number: a number as is, a name through the container's ports. */
const portNumber = (port: number | string | undefined, container: Container) =>
	typeof port === "number" ? port : container.ports?.find(p => p.name === port)?.containerPort;

export interface ManifestExpectations {
	region: RegionDefinition;
	/** services/index.ts's names. */
	knownServices: string[];
	/** What the region's compose stack runs: the Kubernetes groups run the same, each service once. */
	services: string[];
	/** The Service name the edge NATS chart release gets (its fullnameOverride). */
	natsService: string;
	/** deploy/otel/collector.yaml, parsed. */
	collector: unknown;
}

/**
 * What a region's rendered manifests must get right: its namespace; the service groups run its region
 * and between them every service of its compose stack, once; each Deployment has several replicas, a
 * disruption budget that lets a drain through, topology spread, resources and both probes, the groups'
 * on the region's ops port (/healthz, /readyz with the token from a Secret); every Secret is only
 * referenced, never written, and only the ones SECRETS lists.
 */
export function checkManifests(objects: K8sObject[], want: ManifestExpectations): string[] {
	const problems: string[] = [];
	const { region } = want;
	const namespace = namespaceOf(region.id);
	const deployments = objects.filter(o => o.kind === "Deployment") as Deployment[];
	const pdbs = objects.filter(o => o.kind === "PodDisruptionBudget") as Pdb[];
	const services = objects.filter(o => o.kind === "Service") as Service[];

	for (const o of objects) {
		const at = `${o.kind}/${o.metadata.name}`;
		if (o.kind === "Namespace") {
			if (o.metadata.name !== namespace) problems.push(`${at}: is not the region's namespace ${namespace}`);
		} else if (o.metadata.namespace !== namespace) problems.push(`${at}: is in namespace ${o.metadata.namespace ?? "(none)"}, not ${namespace}`);
		if (o.kind === "Secret" && (o.data !== undefined || o.stringData !== undefined)) problems.push(`${at}: carries its data in the manifests`);
		if (o.kind === "ConfigMap")
			for (const key of Object.keys((o.data as Record<string, string>) ?? {}))
				if (SECRET_NAME.test(key) && !PLAIN_URLS.has(key)) problems.push(`${at}: holds ${key}, which belongs in a Secret`);
	}

	const groups = new Map<string, string>();
	const ran = new Map<string, string>();
	for (const d of deployments) {
		const at = `Deployment/${d.metadata.name}`;
		const labels = d.spec.template.metadata.labels;
		const replicas = d.spec.replicas ?? 1;
		if (replicas < 2) problems.push(`${at}: runs ${replicas} replica, so any restart is an outage`);
		const pdb = pdbs.find(p => matches(p.spec.selector.matchLabels, labels));
		if (!pdb) problems.push(`${at}: no PodDisruptionBudget selects its pods`);
		else if (pdb.spec.minAvailable !== undefined && Number(pdb.spec.minAvailable) >= replicas)
			problems.push(`PodDisruptionBudget/${pdb.metadata.name}: minAvailable ${pdb.spec.minAvailable} of ${replicas} replicas blocks every drain`);
		else if (pdb.spec.maxUnavailable !== undefined && Number(pdb.spec.maxUnavailable) < 1)
			problems.push(`PodDisruptionBudget/${pdb.metadata.name}: maxUnavailable ${pdb.spec.maxUnavailable} blocks every drain`);
		const spread = d.spec.template.spec.topologySpreadConstraints ?? [];
		if (!spread.some(s => s.topologyKey === "kubernetes.io/hostname")) problems.push(`${at}: no topologySpreadConstraint over kubernetes.io/hostname`);
		for (const s of spread)
			if (!matches(s.labelSelector?.matchLabels, labels)) problems.push(`${at}: its spread over ${s.topologyKey} selects other pods than its own`);

		for (const c of d.spec.template.spec.containers) {
			const where = `${at} container ${c.name}`;
			const requests = c.resources?.requests ?? {};
			if (!requests.cpu || !requests.memory) problems.push(`${where}: no cpu and memory requests`);
			if (!c.resources?.limits?.memory) problems.push(`${where}: no memory limit`);
			if (!c.livenessProbe) problems.push(`${where}: no liveness probe`);
			if (!c.readinessProbe) problems.push(`${where}: no readiness probe`);
			for (const probe of [c.livenessProbe, c.readinessProbe])
				if (probe?.httpGet && portNumber(probe.httpGet.port, c) === undefined)
					problems.push(`${where}: a probe names port ${probe.httpGet.port}, which it does not declare`);
			const env = environmentOf(c, objects);
			for (const e of c.env ?? [])
				if (SECRET_NAME.test(e.name) && !PLAIN_URLS.has(e.name) && e.value !== undefined) problems.push(`${where}: ${e.name} is written in the manifest`);
			if (c.image?.split(":")[0]?.endsWith("edgehome")) problems.push(...checkGroup(where, c, env, want, groups, ran));
		}
		problems.push(...checkSecretReferences(at, d.spec.template.spec, objects));
	}
	for (const s of want.services) if (!ran.has(s)) problems.push(`no group runs ${s}, which the compose stack runs`);

	for (const s of services) {
		const at = `Service/${s.metadata.name}`;
		const pods = deployments.filter(d => matches(s.spec.selector, d.spec.template.metadata.labels));
		if (pods.length === 0) problems.push(`${at}: selects no Deployment's pods`);
		for (const port of s.spec.ports)
			for (const d of pods)
				if (!d.spec.template.spec.containers.some(c => portNumber(port.targetPort ?? port.port, c) !== undefined))
					problems.push(`${at}: port ${port.name ?? port.port} targets ${port.targetPort}, which ${d.metadata.name}'s pods do not declare`);
	}
	return problems;
}

/** One service group's container: its region, services, ports, probes, node id, and where it sends spans. */
function checkGroup(
	where: string,
	c: Container,
	env: Map<string, string>,
	want: ManifestExpectations,
	groups: Map<string, string>,
	ran: Map<string, string>
): string[] {
	const problems: string[] = [];
	const { region } = want;
	const args = c.args ?? [];
	if (flag(args, "--region") !== region.id) problems.push(`${where}: runs --region ${flag(args, "--region") ?? "(none)"}, not ${region.id}`);
	const list = (flag(args, "--services") ?? "").split(",").filter(Boolean);
	if (list.length === 0) problems.push(`${where}: names no --services`);
	for (const s of list) {
		if (!want.knownServices.includes(s)) problems.push(`${where}: --services names "${s}", which services/index.ts does not have`);
		else if (ran.has(s)) problems.push(`${where}: runs ${s}, as ${ran.get(s)} already does`);
		else ran.set(s, where);
	}
	const group = env.get("EDGEHOME_GROUP");
	if (!group) problems.push(`${where}: EDGEHOME_GROUP is not set`);
	else if (groups.has(group)) problems.push(`${where}: EDGEHOME_GROUP "${group}" is also ${groups.get(group)}'s`);
	else groups.set(group, where);
	if (!env.get("EDGEHOME_NODE_ID")?.includes("$(POD_NAME)"))
		problems.push(`${where}: EDGEHOME_NODE_ID is not made of the pod's name, so replicas share a node id`);

	const metrics = region.ports.metrics;
	const ops = c.ports?.find(p => p.containerPort === metrics);
	if (!ops) problems.push(`${where}: does not declare the region's metrics port ${metrics}`);
	if (env.get("EDGEHOME_METRICS_PORT") !== String(metrics))
		problems.push(`${where}: EDGEHOME_METRICS_PORT is ${env.get("EDGEHOME_METRICS_PORT") ?? "(not set)"}, the region's metrics port is ${metrics}`);
	if (env.get("EDGEHOME_METRICS_HOST") !== "0.0.0.0") problems.push(`${where}: EDGEHOME_METRICS_HOST is not 0.0.0.0, so the kubelet cannot reach /healthz`);
	const live = c.livenessProbe?.httpGet;
	if (live?.path !== "/healthz" || portNumber(live.port, c) !== metrics)
		problems.push(`${where}: its liveness probe is not GET /healthz on the ops port ${metrics}`);
	const ready = c.readinessProbe;
	const readyCommand = ready?.exec?.command?.join(" ") ?? "";
	const readyOk = ready?.httpGet
		? ready.httpGet.path === "/readyz" && portNumber(ready.httpGet.port, c) === metrics
		: readyCommand.includes("/readyz") && readyCommand.includes("process.env.EDGEHOME_METRICS_PORT") && readyCommand.includes("process.env.EDGEHOME_OPS_TOKEN");
	if (!readyOk) problems.push(`${where}: its readiness probe is not /readyz on the ops port ${metrics} with the ops token`);
	if (!env.get("EDGEHOME_OPS_TOKEN")?.startsWith("secret:")) problems.push(`${where}: EDGEHOME_OPS_TOKEN does not come from a Secret`);
	for (const required of [
		"EDGEHOME_BLIND_INDEX_KEY",
		"EDGEHOME_PII_KEYS",
		"EDGEHOME_CAPABILITY_KEYS",
		"EDGEHOME_NATS_PASSWORD",
		"EDGEHOME_MYSQL_URL",
		"EDGEHOME_REDIS_URL"
	])
		if (!env.get(required)?.startsWith("secret:")) problems.push(`${where}: ${required} does not come from a Secret`);
	if (list.includes("sv-log") && (env.get("EDGEHOME_LOG_STORE") !== "mongodb" || !env.get("EDGEHOME_LOG_MONGO_URL")?.startsWith("secret:")))
		problems.push(`${where}: runs sv-log without EDGEHOME_LOG_STORE=mongodb and EDGEHOME_LOG_MONGO_URL from a Secret`);

	for (const client of ["app", "www", "cms", "wx"] as const)
		if (list.includes(`api-${client}`) && !c.ports?.some(p => p.containerPort === region.ports[client]))
			problems.push(`${where}: runs api-${client} but does not declare its port ${region.ports[client]}`);

	const nats = safeUrl(env.get("EDGEHOME_NATS_URL"));
	if (nats?.hostname !== want.natsService || Number(nats.port || NATS_CLIENT_PORT) !== NATS_CLIENT_PORT)
		problems.push(
			`${where}: EDGEHOME_NATS_URL is ${env.get("EDGEHOME_NATS_URL") ?? "(not set)"}, not the edge NATS release nats://${want.natsService}:${NATS_CLIENT_PORT}`
		);
	const otlp = safeUrl(env.get("EDGEHOME_OTLP_URL"));
	if (otlp?.pathname !== "/v1/traces" || Number(otlp.port) !== collectorHttpPort(want.collector))
		problems.push(`${where}: EDGEHOME_OTLP_URL is ${env.get("EDGEHOME_OTLP_URL") ?? "(not set)"}, not the collector's OTLP/HTTP traces endpoint`);
	return problems;
}

function safeUrl(value: string | undefined): URL | undefined {
	try {
		return value ? new URL(value) : undefined;
	} catch {
		return undefined;
	}
}

/** Every Secret a pod names (envFrom, secretKeyRef, volumes) is one of SECRETS, with a key it has; every ConfigMap it names is rendered. */
function checkSecretReferences(at: string, pod: PodSpec, objects: K8sObject[]): string[] {
	const problems: string[] = [];
	const secret = (name: string, key?: string) => {
		if (!SECRETS[name]) problems.push(`${at}: references Secret ${name}, which deploy/README.md does not make`);
		else if (key !== undefined && !SECRETS[name].includes(key))
			problems.push(`${at}: references key ${key} of Secret ${name}, which has ${SECRETS[name].join(", ")}`);
	};
	const configMap = (name: string) => {
		if (!objects.some(o => o.kind === "ConfigMap" && o.metadata.name === name)) problems.push(`${at}: references ConfigMap ${name}, which is not rendered`);
	};
	for (const c of pod.containers) {
		for (const from of c.envFrom ?? []) {
			if (from.secretRef) secret(from.secretRef.name);
			if (from.configMapRef) configMap(from.configMapRef.name);
		}
		for (const e of c.env ?? []) if (e.valueFrom?.secretKeyRef) secret(e.valueFrom.secretKeyRef.name, e.valueFrom.secretKeyRef.key);
	}
	for (const v of pod.volumes ?? []) {
		if (v.secret) secret(v.secret.secretName);
		if (v.configMap) configMap(v.configMap.name);
	}
	return problems;
}

// ---- the NATS chart's values ----

type Values = Record<string, unknown>;
const isMap = (v: unknown): v is Values => typeof v === "object" && v !== null && !Array.isArray(v);
const at = (v: unknown, ...path: string[]): unknown => path.reduce<unknown>((x, k) => (isMap(x) ? x[k] : undefined), v);

export function readValues(path: string): Values {
	return parseDocument(readFileSync(path, "utf8")).toJS() as Values;
}

/** The chart's way of merging: maps key by key, anything else replaced. */
function mergeOverwrite(into: Values, from: unknown): Values {
	if (!isMap(from)) return into;
	for (const [k, v] of Object.entries(from)) into[k] = isMap(v) && isMap(into[k]) ? mergeOverwrite({ ...(into[k] as Values) }, v) : v;
	return into;
}

/** A chart value as the NATS config reads it: `<< $VAR >>` unquoted, scalars as the config reader keeps them (strings). */
function toNats(v: unknown): NatsValue {
	if (Array.isArray(v)) return v.map(toNats);
	if (isMap(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toNats(x)]));
	const text = String(v);
	const raw = /^<<\s*(.*?)\s*>>$/.exec(text);
	return raw ? raw[1]! : text;
}

/** The chart's defaults for where it mounts each protocol's TLS secret and the CA. */
const TLS_DIR: Record<string, string> = { nats: "/etc/nats-certs/nats", leafnodes: "/etc/nats-certs/leafnodes", cluster: "/etc/nats-certs/cluster" };
const CA_DIR = "/etc/nats-ca-cert";

/**
 * The NATS server config the chart renders from `values` (nats-io/nats 2.x: files/config/*.yaml):
 * the server name, the client port and its TLS, the leaf-node port, the cluster with one route per
 * replica, monitoring, JetStream, each block's `merge` and then `config.merge` over the whole.
 */
export function chartConfig(values: Values): NatsMap {
	const config = (values.config ?? {}) as Values;
	const fullname = String(values.fullnameOverride ?? "nats");
	const caFile = at(values, "tlsCA", "enabled")
		? `${String(at(values, "tlsCA", "dir") ?? CA_DIR)}/${String(at(values, "tlsCA", "key") ?? "ca.crt")}`
		: undefined;
	const tls = (protocol: string) => {
		const block = at(config, protocol, "tls");
		if (!at(block, "enabled")) return undefined;
		const dir = String(at(block, "dir") ?? TLS_DIR[protocol]);
		const files = at(block, "secretName")
			? { cert_file: `${dir}/${String(at(block, "cert") ?? "tls.crt")}`, key_file: `${dir}/${String(at(block, "key") ?? "tls.key")}` }
			: {};
		return mergeOverwrite({ ...files, ...(caFile ? { ca_file: caFile } : {}) }, at(block, "merge"));
	};
	const out: Values = { server_name: `${String(config.serverNamePrefix ?? "")}$POD_NAME`, port: at(config, "nats", "port") ?? NATS_CLIENT_PORT };
	if (tls("nats")) out.tls = tls("nats");
	if (at(config, "leafnodes", "enabled")) {
		const leaf: Values = { port: at(config, "leafnodes", "port") ?? NATS_LEAF_PORT, no_advertise: true };
		if (tls("leafnodes")) leaf.tls = tls("leafnodes");
		out.leafnodes = mergeOverwrite(leaf, at(config, "leafnodes", "merge"));
	}
	if (at(config, "cluster", "enabled")) {
		const port = Number(at(config, "cluster", "port") ?? NATS_ROUTE_PORT);
		const replicas = Number(at(config, "cluster", "replicas") ?? 3);
		const scheme = tls("cluster") ? "tls" : "nats";
		const cluster: Values = {
			name: fullname,
			port,
			no_advertise: at(config, "cluster", "noAdvertise") ?? true,
			routes: Array.from({ length: replicas }, (_, i) => `${scheme}://${fullname}-${i}.${fullname}-headless:${port}`)
		};
		if (tls("cluster")) cluster.tls = tls("cluster");
		out.cluster = mergeOverwrite(cluster, at(config, "cluster", "merge"));
	}
	if (at(config, "monitor", "enabled") !== false) out.http_port = at(config, "monitor", "port") ?? 8222;
	if (at(config, "jetstream", "enabled"))
		out.jetstream = mergeOverwrite(
			{ store_dir: at(config, "jetstream", "fileStore", "dir") ?? "/data", max_file_store: at(config, "jetstream", "fileStore", "pvc", "size") ?? "10Gi" },
			at(config, "jetstream", "merge")
		);
	return toNats(mergeOverwrite(out, config.merge)) as NatsMap;
}

/** The files the chart mounts from Secrets: each enabled protocol's certificate and key, and the CA. */
function mountedFiles(values: Values): string[] {
	const config = (values.config ?? {}) as Values;
	const files = Object.keys(TLS_DIR).flatMap(protocol => {
		const block = at(config, protocol, "tls");
		const enabled = at(block, "enabled") && at(block, "secretName") && (protocol === "nats" || at(config, protocol, "enabled"));
		const dir = String(at(block, "dir") ?? TLS_DIR[protocol]);
		return enabled ? [`${dir}/${String(at(block, "cert") ?? "tls.crt")}`, `${dir}/${String(at(block, "key") ?? "tls.key")}`] : [];
	});
	if (at(values, "tlsCA", "enabled") && at(values, "tlsCA", "secretName"))
		files.push(`${String(at(values, "tlsCA", "dir") ?? CA_DIR)}/${String(at(values, "tlsCA", "key") ?? "ca.crt")}`);
	return files;
}

/** What every server's values must get right: TLS from the Secrets, the users and passwords of auth.conf from a Secret, nothing written down. */
function checkServerValues(values: Values, auth: NatsMap): string[] {
	const problems: string[] = [];
	const config = chartConfig(values);
	for (const protocol of [
		"nats",
		...(at(values, "config", "leafnodes", "enabled") ? ["leafnodes"] : []),
		...(at(values, "config", "cluster", "tls", "enabled") ? ["cluster"] : [])
	]) {
		const name = at(values, "config", protocol, "tls", "secretName");
		if (name === undefined) problems.push(`config.${protocol}.tls has no secretName: that port is not TLS`);
		else if (name !== "nats-server-tls") problems.push(`config.${protocol}.tls names Secret ${String(name)}, not nats-server-tls`);
		else
			for (const k of ["cert", "key"])
				if (!SECRETS["nats-server-tls"]!.includes(String(at(values, "config", protocol, "tls", k))))
					problems.push(`config.${protocol}.tls.${k} is not a key of nats-server-tls`);
	}
	if (at(values, "tlsCA", "secretName") !== "nats-ca") problems.push("tlsCA does not name the Secret nats-ca");
	const users = (at(config, "authorization", "users") ?? []) as NatsValue;
	if (JSON.stringify(users) !== JSON.stringify(at(auth, "authorization", "users")))
		problems.push("the client users are not those of deploy/nats/auth.conf (names, password variables, permissions)");
	const env = (at(values, "container", "env") ?? {}) as Values;
	const passwords = (Array.isArray(users) ? users : []).map(u => (typeof u === "object" && !Array.isArray(u) ? u.password : undefined));
	for (const variable of passwords.filter((p): p is string => typeof p === "string" && p.startsWith("$"))) {
		const ref = at(env, variable.slice(1), "valueFrom", "secretKeyRef");
		if (!isMap(ref) || !SECRETS[String(ref.name)]?.includes(String(ref.key)))
			problems.push(`${variable} does not come from a key of a Secret deploy/README.md makes`);
	}
	const written: string[] = [];
	const walk = (v: unknown, path: string) => {
		if (Array.isArray(v)) for (const [i, x] of v.entries()) walk(x, `${path}[${i}]`);
		else if (isMap(v)) for (const [k, x] of Object.entries(v)) walk(x, `${path}.${k}`);
		else if (/password|token|secret$/i.test(path.split(".").at(-1) ?? "") && !/^<<\s*\$\w+\s*>>$/.test(String(v))) written.push(path.slice(1));
	};
	walk(values, "");
	for (const path of written) problems.push(`${path} is written in the values, not read from the environment`);
	const mounted = mountedFiles(values);
	const files = JSON.stringify(config).match(/"(cert_file|key_file|ca_file)":"[^"]*"/g) ?? [];
	for (const f of files) {
		const path = f.split('":"')[1]!.slice(0, -1);
		if (!mounted.includes(path)) problems.push(`${f.split('"')[1]} ${path} is no file the chart mounts`);
	}
	if (!at(values, "container", "resources", "requests") || !at(values, "container", "resources", "limits", "memory"))
		problems.push("container.resources sets no requests or memory limit");
	return problems;
}

/**
 * A region's edge server values: the topology of deploy/nats/<region>.conf (checkNatsConf on what the
 * chart renders: JetStream domain = the region, one leaf-node remote to every hub server, its own first),
 * a cluster of its own name, spread over nodes.
 */
export function checkEdgeValues(regionId: string, allRegionIds: string[], values: Values, auth: NatsMap): string[] {
	const config = chartConfig(values);
	const problems = [...checkNatsConf(regionId, allRegionIds, config), ...checkServerValues(values, auth)];
	if (at(values, "config", "cluster", "enabled") && at(config, "cluster", "name") !== `edgehome-${regionId}`)
		problems.push(`the edge cluster is named ${String(at(config, "cluster", "name"))}, not edgehome-${regionId}`);
	if (at(values, "config", "leafnodes", "enabled")) problems.push("the edge listens for leaf nodes: only the hub does");
	if (!isMap(at(values, "podTemplate", "topologySpreadConstraints", "kubernetes.io/hostname")))
		problems.push("its servers are not spread over kubernetes.io/hostname");
	return problems;
}

/** A region's hub server values: the topology of deploy/nats/hub-<region>.conf (checkHubConf on what the chart renders), its routes and leaf-node port on a load balancer, its client port not. */
export function checkHubValues(regionId: string, allRegionIds: string[], values: Values, auth: NatsMap): string[] {
	const config = chartConfig(values);
	const problems = [...checkHubConf(regionId, allRegionIds, config), ...checkServerValues(values, auth)];
	if (at(values, "service", "merge", "spec", "type") !== "LoadBalancer") problems.push("its Service is not a LoadBalancer: the other regions cannot reach it");
	for (const port of ["cluster", "leafnodes"])
		if (at(values, "service", "ports", port, "enabled") !== true) problems.push(`its Service does not expose the ${port} port`);
	if (at(values, "service", "ports", "nats", "enabled") !== false) problems.push("its Service exposes the client port beyond the cluster");
	return problems;
}

export function readAuthConf(): NatsMap {
	return parseNatsConf(readFileSync(join(DEPLOY, "nats", "auth.conf"), "utf8"));
}
