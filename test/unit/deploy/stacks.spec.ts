import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { loadRegions } from "../../../regions/loader.ts";
import { SERVICES } from "../../../services/index.ts";
import { parseNatsConf } from "./nats-conf.ts";
import type { ComposeFile } from "./stack-checks.ts";
import {
	checkCollectorConfig,
	checkCompose,
	checkDockerfile,
	checkHubConf,
	checkNatsConf,
	checkNatsService,
	checkObservability,
	checkPrometheus,
	checkScrapeAuthorization,
	checkSecrets,
	composePath,
	DEPLOY,
	DOCKERFILE,
	durationMs,
	groupNames,
	hubConfPath,
	natsConfPath,
	parseCompose,
	parseDockerfile,
	ROOT,
	readHubConf,
	readNatsConf,
	readObservabilityFiles,
	SHARED_NATS_CONFS,
	scrapeTargets
} from "./stack-checks.ts";

/**
 * deploy/ cannot be run here (no Docker engine in CI), so the stacks are checked statically: every
 * region has one, and each one runs its own region, only known services, against its own containers,
 * with no password written down. compose-config.spec.ts has Compose itself read them.
 */

// The shipped definitions, whatever EDGEHOME_REGIONS_DIR says.
const REGIONS = loadRegions(join(ROOT, "regions", "definitions"));
const REGION_IDS = REGIONS.map(r => r.id);
const KNOWN_SERVICES = Object.keys(SERVICES);

function readCompose(regionId: string): { compose: ComposeFile; text: string; file: string } {
	const file = composePath(regionId);
	const text = readFileSync(file, "utf8");
	return { compose: parseCompose(text), text, file };
}

const clone = <T>(v: T): T => structuredClone(v);
const OBSERVABILITY = readObservabilityFiles();

describe("deploy/ has a stack for every region and none for a region that does not exist", () => {
	it.each(REGION_IDS)("%s has deploy/regions/<id>/compose.yml, deploy/nats/<id>.conf and deploy/nats/hub-<id>.conf", id => {
		expect(existsSync(composePath(id)), `deploy/regions/${id}/compose.yml`).toBe(true);
		expect(existsSync(natsConfPath(id)), `deploy/nats/${id}.conf`).toBe(true);
		expect(existsSync(hubConfPath(id)), `deploy/nats/hub-${id}.conf`).toBe(true);
	});

	it("holds no stack or NATS config for an unknown region", () => {
		const stacks = readdirSync(join(DEPLOY, "regions"));
		const confs = readdirSync(join(DEPLOY, "nats"))
			.filter(f => f.endsWith(".conf") && !SHARED_NATS_CONFS.includes(f))
			.map(f => f.replace(/\.conf$/, "").replace(/^hub-/, ""));
		expect(stacks.filter(s => !REGION_IDS.includes(s))).toEqual([]);
		expect(confs.filter(c => !REGION_IDS.includes(c))).toEqual([]);
	});
});

describe.each(REGIONS)("the $id stack", region => {
	it("parses as YAML", () => {
		expect(() => readCompose(region.id)).not.toThrow();
	});

	it("runs its own region, only known services, against its own containers, with no password written down", () => {
		const { compose, text, file } = readCompose(region.id);
		expect(checkCompose(region, compose, file, KNOWN_SERVICES, text)).toEqual([]);
	});

	it("watches itself: Prometheus on deploy/prometheus with the token as a secret, Grafana on deploy/grafana, the collector on deploy/otel", () => {
		const { compose, file } = readCompose(region.id);
		expect(checkObservability(region, compose, file, OBSERVABILITY)).toEqual([]);
	});

	it("runs its edge and hub NATS servers from its own region's configs, JetStream on volumes, the hub's route and leaf-node ports published", () => {
		const { compose, file } = readCompose(region.id);
		expect(checkNatsService(region.id, compose, file, readNatsConf(region.id), readHubConf(region.id))).toEqual([]);
	});
});

describe.each(REGIONS)("deploy/nats/$id.conf", region => {
	it("is its region's edge: its own JetStream domain, a leaf node of every hub server, its own region's first", () => {
		expect(checkNatsConf(region.id, REGION_IDS, readNatsConf(region.id))).toEqual([]);
	});

	it("has a hub server config: domain hub, routes to every hub server, every region's edge mapped by its certificate", () => {
		expect(checkHubConf(region.id, REGION_IDS, readHubConf(region.id))).toEqual([]);
	});

	// `nats-server -t` on each config, with the certificates and passwords it needs: nats-config.spec.ts.
});

describe("the NATS configs together", () => {
	it("give every server its own name", () => {
		const names = REGION_IDS.flatMap(id => [readNatsConf(id).server_name, readHubConf(id).server_name]);
		expect(new Set(names).size).toBe(names.length);
	});
});

describe("deploy/Dockerfile", () => {
	const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
		dependencies?: Record<string, string>;
		engines?: { node?: string };
	};

	it("runs the region launcher as a non-root user, with a /healthz healthcheck, and holds every file and package it loads", () => {
		expect(checkDockerfile(parseDockerfile(readFileSync(DOCKERFILE, "utf8")), pkg)).toEqual([]);
	});

	it("has the modules Moleculer loads by name for the NATS transporter and the Redis cacher among the dependencies", () => {
		expect(Object.keys(pkg.dependencies ?? {})).toEqual(expect.arrayContaining(["nats", "ioredis"]));
	});
});

describe("deploy/prometheus/prometheus.yml", () => {
	it("scrapes every service group of every region on the region's metrics port", () => {
		const prometheus = parseYaml(readFileSync(join(DEPLOY, "prometheus", "prometheus.yml"), "utf8")) as unknown;
		const groups = new Map(REGIONS.map(r => [r, groupNames(readCompose(r.id).compose, composePath(r.id))]));
		expect(checkPrometheus(scrapeTargets(prometheus), groups)).toEqual([]);
		expect(checkScrapeAuthorization(prometheus)).toEqual([]);
	});

	it("catches a scrape without the ops token, or with the token written in the config", () => {
		const prometheus = parseYaml(readFileSync(join(DEPLOY, "prometheus", "prometheus.yml"), "utf8")) as { scrape_configs: Record<string, unknown>[] };
		const without = clone(prometheus);
		delete without.scrape_configs[0]!.authorization;
		expect(checkScrapeAuthorization(without).join("\n")).toMatch(/sends no bearer token/);
		const inline = clone(prometheus);
		inline.scrape_configs[0]!.authorization = { type: "Bearer", credentials: "secret" };
		expect(checkScrapeAuthorization(inline).join("\n")).toMatch(/written in the config/);
	});
});

describe("deploy/otel/collector.yaml", () => {
	it("receives OTLP/HTTP on every interface and sends every span on through one traces pipeline", () => {
		expect(checkCollectorConfig(parseYaml(OBSERVABILITY.collector))).toEqual([]);
	});

	it("catches a pipeline naming an undefined exporter, a receiver on loopback, an unused exporter", () => {
		const config = parseYaml(OBSERVABILITY.collector) as Record<string, any>;
		const broken = clone(config);
		broken.receivers.otlp.protocols.http.endpoint = "localhost:4318";
		broken.service.pipelines.traces.exporters = ["otlp/nowhere"];
		expect(checkCollectorConfig(broken)).toEqual([
			"the OTLP/HTTP receiver listens on localhost:4318, which the services in other containers cannot reach",
			"pipeline traces uses exporter otlp/nowhere, which is not defined",
			"exporter otlp/backend is defined but in no pipeline",
			"exporter debug is defined but in no pipeline"
		]);
		const late = clone(config);
		late.service.pipelines.traces.processors = ["batch", "memory_limiter"];
		expect(checkCollectorConfig(late)).toEqual(["pipeline traces does not start with memory_limiter"]);
	});
});

// The checks above pass on the shipped files; these prove that they fail on the mistakes they are for.
describe("the checks catch a broken stack", () => {
	const region = REGIONS.find(r => r.id === "ap-south")!;
	const { compose, text, file } = readCompose(region.id);
	const problemsOf = (change: (c: ComposeFile) => void, raw = text) => {
		const copy = clone(compose);
		change(copy);
		return checkCompose(region, copy, file, KNOWN_SERVICES, raw).join("\n");
	};
	const core = (c: ComposeFile) => c.services!.core!;
	const env = (c: ComposeFile) => core(c).environment as Record<string, string>;

	it("another region's id on the command line", () => {
		expect(problemsOf(c => (core(c).command = ["--region", "cn-east", "--services", "sv-config"]))).toMatch(/runs --region cn-east, not ap-south/);
	});

	it("a service that services/index.ts does not have", () => {
		expect(problemsOf(c => (core(c).command = ["--region", "ap-south", "--services", "sv-config,sv-nope"]))).toMatch(/"sv-nope"/);
	});

	it("a store URL pointing at a container the file does not define", () => {
		expect(problemsOf(c => (env(c).EDGEHOME_REDIS_URL = "redis://cache:6379/0"))).toMatch(/EDGEHOME_REDIS_URL points at "cache"/);
	});

	it("another region's database", () => {
		expect(problemsOf(c => (env(c).EDGEHOME_MYSQL_URL = "mysql://edgehome:${MYSQL_PASSWORD:?x}@mariadb:3306/edgehome_cn_east"))).toMatch(
			/database "edgehome_cn_east"/
		);
	});

	it("another region's metrics port", () => {
		const problems = problemsOf(c => {
			core(c).ports = ["8190:8190"];
			env(c).EDGEHOME_METRICS_PORT = "8190";
		});
		expect(problems).toMatch(/does not publish the region's metrics port 8290/);
		expect(problems).toMatch(/EDGEHOME_METRICS_PORT is 8190/);
	});

	it("the ops port published on every interface or a public address, or without its token", () => {
		for (const published of ["8290:8290", "0.0.0.0:8290:8290", "[::]:8290:8290", "203.0.113.7:8290:8290", "${EDGEHOME_OPS_ADDRESS:-0.0.0.0}:8290:8290"])
			expect(
				problemsOf(c => (core(c).ports = [published])),
				published
			).toMatch(/publishes the ops port 8290 on .*not on a loopback or private address/);
		for (const published of ["127.0.0.1:8290:8290", "10.0.0.12:8290:8290", "${EDGEHOME_OPS_ADDRESS:-127.0.0.1}:8290:8290"])
			expect(
				problemsOf(c => (core(c).ports = [published])),
				published
			).not.toMatch(/publishes the ops port/);
		expect(problemsOf(c => delete env(c).EDGEHOME_OPS_TOKEN)).toMatch(/EDGEHOME_OPS_TOKEN is not a required/);
		expect(problemsOf(c => (env(c).EDGEHOME_OPS_TOKEN = "a-token-written-down-in-the-compose-file"))).toMatch(/EDGEHOME_OPS_TOKEN is not a required/);
	});

	it("a store not waited for until healthy, or without a healthcheck", () => {
		expect(problemsOf(c => (core(c).depends_on = { nats: { condition: "service_healthy" }, mariadb: { condition: "service_started" } }))).toMatch(
			/does not depend on mariadb with condition service_healthy[\s\S]*does not depend on redis/
		);
		expect(problemsOf(c => delete c.services!.redis!.healthcheck)).toMatch(/depends on redis, which has no healthcheck/);
	});

	it("a stop_grace_period that cuts the drain short", () => {
		expect(problemsOf(c => (core(c).stop_grace_period = "10s"))).toMatch(/stop_grace_period 10s is not longer/);
		expect(durationMs("1m30s")).toBe(90_000);
	});

	it("a second group publishing the same host port", () => {
		const problems = problemsOf(c => {
			c.services!.edge = clone(core(c));
			(c.services!.edge.environment as Record<string, string>).EDGEHOME_GROUP = "edge";
		});
		expect(problems).toMatch(/publishes 0\.0\.0\.0:8201, as core already does/);
		expect(problems).toMatch(/EDGEHOME_NODE_ID "ap-south-core" is also core's/);
	});

	it("a password written down, defaulted, or left empty", () => {
		const secrets = (change: (c: ComposeFile) => void, raw = "") => {
			const copy = clone(compose);
			change(copy);
			return checkSecrets(copy, raw).join("\n");
		};
		expect(secrets(c => (c.services!.mariadb!.environment = { MARIADB_ROOT_PASSWORD: "hunter2" }))).toMatch(/MARIADB_ROOT_PASSWORD is not/);
		expect(secrets(c => (c.services!.mariadb!.environment = { MARIADB_ALLOW_EMPTY_ROOT_PASSWORD: "1" }))).toMatch(/leaves a password empty/);
		expect(secrets(c => (env(c).EDGEHOME_MYSQL_URL = "mysql://edgehome:hunter2@mariadb:3306/edgehome_ap_south"))).toMatch(/holds a password/);
		expect(secrets(c => (c.services!.redis!.command = ["redis-server", "--requirepass", "hunter2"]))).toMatch(/--requirepass/);
		expect(secrets(() => undefined, "x: ${MYSQL_PASSWORD:-edgehome}")).toMatch(/must be required/);
		expect(secrets(() => undefined, text)).toBe("");
	});

	it("sv-log without its MongoDB, or on another region's database; spans sent nowhere or to a container that is no collector", () => {
		expect(problemsOf(c => delete env(c).EDGEHOME_LOG_STORE)).toMatch(/runs sv-log without EDGEHOME_LOG_STORE=mongodb/);
		expect(problemsOf(c => (env(c).EDGEHOME_LOG_MONGO_URL = "mongodb://root:${MONGO_ROOT_PASSWORD:?x}@mongo:27017/edgehome_cn_east"))).toMatch(
			/EDGEHOME_LOG_MONGO_URL names database "edgehome_cn_east"/
		);
		expect(problemsOf(c => (core(c).depends_on = { ...(core(c).depends_on as object), mongo: { condition: "service_started" } }))).toMatch(
			/does not depend on mongo with condition service_healthy/
		);
		expect(problemsOf(c => delete env(c).EDGEHOME_OTLP_URL)).toMatch(/EDGEHOME_OTLP_URL is not set/);
		const wrong = problemsOf(c => (env(c).EDGEHOME_OTLP_URL = "http://jaeger:4317/v1/trace"));
		expect(wrong).toMatch(/points at "jaeger", not the collector otel-collector/);
		expect(wrong).toMatch(/uses port 4317, the collector's OTLP\/HTTP receiver is on 4318/);
		expect(wrong).toMatch(/path is \/v1\/trace,/);
	});

	it("a healthcheck left out without saying so, or disabled on a service something waits for", () => {
		expect(problemsOf(c => delete c.services!.jaeger!.healthcheck)).toMatch(/service jaeger: has no healthcheck \(or an explicit disable: true\)/);
		const copy = clone(compose);
		copy.services!.core!.depends_on = { ...(copy.services!.core!.depends_on as object), "otel-collector": { condition: "service_healthy" } };
		const problems = checkObservability(region, copy, file, OBSERVABILITY).join("\n");
		expect(problems).toMatch(/otel-collector: a group waits for it/);
		expect(problems).toMatch(/otel-collector: has its healthcheck disabled, yet a service waits for it/);
	});

	it("Prometheus without its rules or its token, a group it cannot reach, Grafana off its provisioning or with the default password, a collector missing a variable", () => {
		const observe = (change: (c: ComposeFile) => void) => {
			const copy = clone(compose);
			change(copy);
			return checkObservability(region, copy, file, OBSERVABILITY).join("\n");
		};
		const prometheus = (c: ComposeFile) => c.services!.prometheus!;
		expect(observe(c => (prometheus(c).volumes = prometheus(c).volumes!.filter(v => !String(v).includes("rules"))))).toMatch(
			/does not mount deploy\/prometheus\/rules beside its config/
		);
		expect(observe(c => delete prometheus(c).secrets)).toMatch(/reads its token from \/etc\/prometheus\/edgehome-ops-token, which no secret/);
		expect(observe(c => delete core(c).networks)).toMatch(/is scraped at core\.ap-south\.edgehome\.internal, which is not one of its network aliases/);
		expect(observe(c => (prometheus(c).ports = ["9090:9090"]))).toMatch(/prometheus: publishes 9090 on every interface/);
		const grafana = (c: ComposeFile) => c.services!.grafana!;
		expect(observe(c => (grafana(c).volumes = ["../../grafana/provisioning:/etc/grafana/provisioning:ro"]))).toMatch(
			/does not mount deploy\/grafana\/dashboards at \/var\/lib\/grafana\/dashboards\/edgehome/
		);
		expect(observe(c => (grafana(c).environment = {}))).toMatch(/sets no admin password/);
		expect(observe(c => delete c.services!.prometheus)).toMatch(
			/no service mounts deploy\/prometheus\/prometheus\.yml[\s\S]*datasource Prometheus is at http:\/\/prometheus:9090/
		);
		expect(observe(c => delete (c.services!["otel-collector"]!.environment as Record<string, string>).TRACES_BACKEND)).toMatch(
			/the config reads \$\{env:TRACES_BACKEND\}, which the service does not set/
		);
	});

	it("a secret written into the file, one from a path in the repository, or a _FILE variable pointing at no secret", () => {
		const secrets = (change: (c: ComposeFile) => void) => {
			const copy = clone(compose);
			change(copy);
			return checkSecrets(copy, text).join("\n");
		};
		expect(secrets(c => (c.secrets!["ops-token"] = { content: "a-token" }))).toMatch(/secret ops-token: its content is written in the file/);
		expect(secrets(c => (c.secrets!["ops-token"] = { file: "./ops-token" }))).toMatch(/secret ops-token: file \.\/ops-token is not under a required/);
		expect(secrets(c => ((c.services!.grafana!.environment as Record<string, string>).GF_SECURITY_ADMIN_PASSWORD__FILE = "/etc/passwd"))).toMatch(
			/GF_SECURITY_ADMIN_PASSWORD__FILE is \/etc\/passwd, which is none of its secrets/
		);
		expect(secrets(c => delete c.secrets!["grafana-admin-password"])).toMatch(/uses secret "grafana-admin-password", which the file does not define/);
	});

	it("a NATS config copied from another region", () => {
		expect(checkNatsConf("ap-south", REGION_IDS, readNatsConf("cn-east")).join("\n")).toMatch(/JetStream domain is cn-east[\s\S]*dials .*hub\.cn-east.* first/);
		const fewer = parseNatsConf(readFileSync(natsConfPath("ap-south"), "utf8").replace(/^.*hub\.eu-central\.edgehome\.internal.*$/m, ""));
		expect(checkNatsConf("ap-south", REGION_IDS, fewer)).toEqual([
			"the leaf-node remote does not dial the hub server of eu-central",
			"the leaf-node remote dials 2 servers for 3 regions"
		]);
		expect(checkHubConf("ap-south", REGION_IDS, readHubConf("cn-east")).join("\n")).toMatch(/server_name is hub-cn-east[\s\S]*advertises hub\.cn-east/);
		const unmapped = parseNatsConf(readFileSync(hubConfPath("ap-south"), "utf8").replace("verify_and_map: true", "verify: true"));
		expect(checkHubConf("ap-south", REGION_IDS, unmapped)).toEqual(["leaf nodes are not authenticated by their certificate (tls verify_and_map)"]);
	});

	it("a stack mounting another region's NATS config", () => {
		const copy = clone(compose);
		copy.services!.nats!.volumes = ["../../nats/cn-east.conf:/etc/nats/edgehome.conf:ro", "nats-data:/data"];
		expect(checkNatsService("ap-south", copy, file, readNatsConf("ap-south"), readHubConf("ap-south")).join("\n")).toMatch(
			/does not mount deploy\/nats\/ap-south\.conf/
		);
		const unpublished = clone(compose);
		unpublished.services!["nats-hub"]!.ports = ["127.0.0.1:8223:8222"];
		expect(checkNatsService("ap-south", unpublished, file, readNatsConf("ap-south"), readHubConf("ap-south"))).toEqual([
			"service nats-hub: does not publish the route port, so no other hub server can connect",
			"service nats-hub: does not publish the leaf-node port, so no region's edge can connect"
		]);
	});

	it("an image missing a folder the program loads, or running as root", () => {
		const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
		const docker = parseDockerfile(readFileSync(DOCKERFILE, "utf8"));
		const problems = checkDockerfile({ ...docker, user: undefined, copied: docker.copied.filter(c => c !== "mixins") }, pkg).join("\n");
		expect(problems).toMatch(/runs as root/);
		expect(problems).toMatch(/mixins\/.* is loaded at run time but no COPY puts it in the image/);
	});
});
