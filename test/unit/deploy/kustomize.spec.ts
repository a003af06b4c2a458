import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { loadRegions } from "../../../regions/loader.ts";
import { SERVICES } from "../../../services/index.ts";
import type { K8sObject, ManifestExpectations } from "./k8s-checks.ts";
import * as k8s from "./k8s-checks.ts";
import { COLLECTOR_CONFIG, composePath, DEPLOY, parseCompose, ROOT } from "./stack-checks.ts";

/**
 * deploy/k8s as an operator uses it: `kubectl kustomize` renders each region's overlay; every object it
 * renders passes the Kubernetes API schema (kubernetes-models' bundled one, unknown fields refused); the
 * service groups are Deployments with both probes on the ops port, resources, a disruption budget and
 * topology spread; Secrets are referenced, never written. The NATS servers' Helm values (nats-io/nats)
 * render the region-autonomy topology of deploy/nats.
 */
const REGIONS = loadRegions(join(ROOT, "regions", "definitions"));
const REGION_IDS = REGIONS.map(r => r.id);
const kubectl = !spawnSync("kubectl", ["version", "--client"]).error;
if (!kubectl) console.log("kustomize.spec.ts: the rendering checks are skipped, kubectl is not installed");

const clone = <T>(v: T): T => structuredClone(v);
const COLLECTOR = parseYaml(readFileSync(COLLECTOR_CONFIG, "utf8")) as unknown;

/** What the region's compose stack runs: the Kubernetes groups run the same services between them. */
function composeServices(regionId: string): string[] {
	const compose = parseCompose(readFileSync(composePath(regionId), "utf8"));
	const args = compose.services!.core!.command as string[];
	return args[args.indexOf("--services") + 1]!.split(",");
}

const expectations = (regionId: string): ManifestExpectations => ({
	region: REGIONS.find(r => r.id === regionId)!,
	knownServices: Object.keys(SERVICES),
	services: composeServices(regionId),
	natsService: String(k8s.readValues(k8s.natsValuesPath(regionId)).fullnameOverride),
	collector: COLLECTOR
});

// Rendered once per region (kubectl runs in a fraction of a second each), shared by the tests.
const rendered = new Map(REGION_IDS.map(id => [id, kubectl ? k8s.renderOverlay(k8s.overlayPath(id)) : { objects: [] as K8sObject[] }]));

describe("deploy/k8s has an overlay and NATS values for every region and for no other", () => {
	it("overlays/<region>, nats/values-<region>.yaml and nats/values-hub-<region>.yaml per region", () => {
		expect(readdirSync(join(k8s.K8S, "overlays")).sort()).toEqual([...REGION_IDS].sort());
		const values = readdirSync(join(k8s.K8S, "nats")).map(f => f.replace(/^values-(hub-)?|\.yaml$/g, ""));
		expect([...new Set(values)].sort()).toEqual([...REGION_IDS].sort());
		expect(values.length).toBe(REGION_IDS.length * 2);
	});
});

describe.skipIf(!kubectl).each(REGIONS)("kubectl kustomize deploy/k8s/overlays/$id", region => {
	const { objects, error } = rendered.get(region.id)!;

	it("renders", () => {
		expect(error).toBeUndefined();
		expect(objects.map(o => `${o.kind}/${o.metadata.name.replace(/-[a-z0-9]{10}$/, "")}`).sort()).toEqual(
			[
				"ConfigMap/edgehome-env",
				"ConfigMap/otel-collector",
				"ConfigMap/otel-collector-env",
				"Deployment/edgehome-core",
				"Deployment/edgehome-gateways",
				"Deployment/otel-collector",
				`Namespace/edgehome-${region.id}`,
				"NetworkPolicy/nats-edge",
				"PodDisruptionBudget/edgehome-core",
				"PodDisruptionBudget/edgehome-gateways",
				"PodDisruptionBudget/otel-collector",
				"Service/edgehome-gateways",
				"Service/otel-collector"
			].sort()
		);
	});

	it("passes the Kubernetes API schema, every field known to it", async () => {
		const problems = (await Promise.all(objects.map(k8s.schemaProblems))).flat();
		expect(problems).toEqual([]);
	});

	it("runs the region's services in groups with both probes on its ops port, resources, a disruption budget and spread, Secrets only referenced", () => {
		expect(k8s.checkManifests(objects, expectations(region.id))).toEqual([]);
	});
});

describe.each(REGIONS)("deploy/k8s/nats values for $id (nats-io/nats chart)", region => {
	const auth = k8s.readAuthConf();

	it("the edge: JetStream domain of its own, a leaf node of every hub server with its own region's first, TLS and the users of auth.conf from Secrets", () => {
		expect(k8s.checkEdgeValues(region.id, REGION_IDS, k8s.readValues(k8s.natsValuesPath(region.id)), auth)).toEqual([]);
	});

	it("the hub server: domain hub, routes to every hub server, every region's edge mapped by its certificate, reachable by the other regions only there", () => {
		expect(k8s.checkHubValues(region.id, REGION_IDS, k8s.readValues(k8s.hubValuesPath(region.id)), auth)).toEqual([]);
	});
});

describe("deploy/README.md makes every Secret the manifests and values reference, with their keys", () => {
	const readme = readFileSync(join(DEPLOY, "README.md"), "utf8");

	it.each(Object.entries(k8s.SECRETS))("%s", (name, keys) => {
		const command = readme.split("\n").find(l => l.startsWith("kubectl ") && l.includes(`create secret generic ${name} `)) ?? "";
		expect(command, `a kubectl create secret line for ${name}`).not.toBe("");
		const made = [...command.matchAll(/--from-(?:literal|file)=([^=\s]+)=/g)].map(m => m[1]);
		expect(made.sort()).toEqual([...keys].sort());
	});
});

// The checks above pass on the shipped files; these prove that they fail on the mistakes they are for.
describe.skipIf(!kubectl)("the checks catch a broken manifest", () => {
	const regionId = "eu-central";
	const { objects } = rendered.get(regionId)!;
	const want = expectations(regionId);
	const problemsOf = (change: (objects: K8sObject[]) => void) => {
		const copy = clone(objects);
		change(copy);
		return k8s.checkManifests(copy, want).join("\n");
	};
	const find = (list: K8sObject[], kind: string, name: string) => list.find(o => o.kind === kind && o.metadata.name === name) as any;
	const core = (list: K8sObject[]) => find(list, "Deployment", "edgehome-core").spec.template.spec.containers[0];

	it("a misspelt field, a quantity that is none, a missing required field", async () => {
		const deployment = clone(find(objects, "Deployment", "edgehome-core"));
		deployment.spec.template.spec.containers[0].readinesProbe = deployment.spec.template.spec.containers[0].readinessProbe;
		deployment.spec.template.spec.containers[0].resources.limits.memory = "1 gigabyte";
		delete deployment.spec.selector;
		const problems = (await k8s.schemaProblems(deployment)).join("\n");
		expect(problems).toMatch(/\/spec\/template\/spec\/containers\/0\/readinesProbe is not a field of the schema/);
		expect(problems).toMatch(/\/resources\/limits\/memory fails/);
		expect(problems).toMatch(/fails required \{"missingProperty":"selector"\}/);
		expect(await k8s.schemaProblems({ apiVersion: "example.com/v1", kind: "Widget", metadata: { name: "w" } })).toEqual([
			"Widget/w: no Kubernetes schema for example.com/v1 Widget"
		]);
		expect(k8s.schemaName("policy/v1", "PodDisruptionBudget")).toBe("IoK8sApiPolicyV1PodDisruptionBudget");
	});

	it("probes off the ops port, on the wrong path, or missing; a readiness probe without the token", () => {
		expect(problemsOf(list => (core(list).livenessProbe.httpGet.path = "/readyz"))).toMatch(/liveness probe is not GET \/healthz on the ops port 8390/);
		expect(problemsOf(list => (core(list).ports[0].containerPort = 8190))).toMatch(/does not declare the region's metrics port 8390/);
		expect(problemsOf(list => delete core(list).readinessProbe)).toMatch(/no readiness probe[\s\S]*readiness probe is not \/readyz/);
		expect(problemsOf(list => (core(list).readinessProbe.exec.command = ["node", "-e", "fetch('http://127.0.0.1:8390/readyz')"]))).toMatch(
			/readiness probe is not \/readyz on the ops port 8390 with the ops token/
		);
		expect(problemsOf(list => (core(list).livenessProbe.httpGet.port = "metrics"))).toMatch(/names port metrics, which it does not declare/);
	});

	it("another region, a service run twice or nowhere, replicas sharing a node id", () => {
		expect(problemsOf(list => (core(list).args[1] = "cn-east"))).toMatch(/runs --region cn-east, not eu-central/);
		const twice = problemsOf(list => (core(list).args[3] = `${core(list).args[3]},api-app`));
		expect(twice).toMatch(/runs api-app, as Deployment\/edgehome-gateways container edgehome already does|runs api-app, as Deployment\/edgehome-core/);
		expect(problemsOf(list => (core(list).args[3] = "sv-config"))).toMatch(/no group runs sv-region, which the compose stack runs/);
		expect(problemsOf(list => (core(list).env.find((e: { name: string }) => e.name === "EDGEHOME_NODE_ID").value = "eu-central-core"))).toMatch(
			/replicas share a node id/
		);
	});

	it("one replica, no disruption budget or one that blocks drains, no spread, no resources", () => {
		expect(problemsOf(list => (find(list, "Deployment", "edgehome-gateways").spec.replicas = 1))).toMatch(/edgehome-gateways: runs 1 replica/);
		expect(problemsOf(list => list.splice(list.indexOf(find(list, "PodDisruptionBudget", "edgehome-core")), 1))).toMatch(
			/Deployment\/edgehome-core: no PodDisruptionBudget selects its pods/
		);
		expect(
			problemsOf(list => {
				const pdb = find(list, "PodDisruptionBudget", "otel-collector");
				delete pdb.spec.maxUnavailable;
				pdb.spec.minAvailable = 2;
			})
		).toMatch(/minAvailable 2 of 2 replicas blocks every drain/);
		expect(problemsOf(list => delete find(list, "Deployment", "edgehome-core").spec.template.spec.topologySpreadConstraints)).toMatch(
			/no topologySpreadConstraint over kubernetes\.io\/hostname/
		);
		expect(problemsOf(list => delete core(list).resources)).toMatch(/no cpu and memory requests[\s\S]*no memory limit/);
	});

	it("a Secret with data, a password in an env value or a ConfigMap, an unknown Secret or key", () => {
		expect(
			problemsOf(list => list.push({ apiVersion: "v1", kind: "Secret", metadata: { name: "x", namespace: "edgehome-eu-central" }, stringData: { a: "b" } }))
		).toMatch(/Secret\/x: carries its data in the manifests/);
		expect(problemsOf(list => core(list).env.push({ name: "EDGEHOME_OPS_TOKEN", value: "a-token-of-thirty-two-characters-or-more" }))).toMatch(
			/EDGEHOME_OPS_TOKEN is written in the manifest[\s\S]*EDGEHOME_OPS_TOKEN does not come from a Secret/
		);
		const configMap = (list: K8sObject[]) => list.find(o => o.kind === "ConfigMap" && o.metadata.name.startsWith("edgehome-env")) as any;
		expect(problemsOf(list => (configMap(list).data.EDGEHOME_MYSQL_URL = "mysql://edgehome:pw@db/edgehome_eu_central"))).toMatch(
			/holds EDGEHOME_MYSQL_URL, which belongs in a Secret/
		);
		expect(problemsOf(list => (core(list).envFrom[1].secretRef.name = "my-keys"))).toMatch(/references Secret my-keys, which deploy\/README\.md does not make/);
		expect(
			problemsOf(list => (core(list).env.find((e: { name: string }) => e.name === "EDGEHOME_NATS_PASSWORD").valueFrom.secretKeyRef.key = "password"))
		).toMatch(/references key password of Secret nats-passwords/);
	});

	it("the wrong namespace, a Service whose port no pod declares, spans sent elsewhere", () => {
		expect(problemsOf(list => (find(list, "Service", "otel-collector").metadata.namespace = "default"))).toMatch(
			/Service\/otel-collector: is in namespace default/
		);
		expect(problemsOf(list => (find(list, "Service", "edgehome-gateways").spec.ports[0].targetPort = "api"))).toMatch(/port app targets api/);
		const configMap = (list: K8sObject[]) => list.find(o => o.kind === "ConfigMap" && o.metadata.name.startsWith("edgehome-env")) as any;
		expect(problemsOf(list => (configMap(list).data.EDGEHOME_OTLP_URL = "http://otel-collector:4317"))).toMatch(
			/EDGEHOME_OTLP_URL is http:\/\/otel-collector:4317, not the collector's/
		);
	});
});

describe("the checks catch broken NATS values", () => {
	const auth = k8s.readAuthConf();
	const edge = k8s.readValues(k8s.natsValuesPath("ap-south")) as any;
	const hub = k8s.readValues(k8s.hubValuesPath("ap-south")) as any;

	it("an edge in another region's domain, dialing another hub first, listening for leaf nodes, with a password written down", () => {
		const broken = clone(edge);
		broken.config.jetstream.merge.domain = "cn-east";
		broken.config.merge.leafnodes.remotes[0].urls.reverse();
		broken.config.leafnodes = { enabled: true };
		broken.config.merge.authorization.users[0].password = "hunter2";
		const problems = k8s.checkEdgeValues("ap-south", REGION_IDS, broken, auth).join("\n");
		expect(problems).toMatch(/JetStream domain is cn-east, not ap-south/);
		expect(problems).toMatch(/dials nats-leaf:\/\/hub\.eu-central\.edgehome\.internal:7422 first/);
		expect(problems).toMatch(/the edge listens for leaf nodes/);
		expect(problems).toMatch(/config\.merge\.authorization\.users\[0\]\.password is written in the values/);
		expect(problems).toMatch(/the client users are not those of deploy\/nats\/auth\.conf/);
	});

	it("an edge cluster of two, certificates the chart does not mount, a password from no Secret", () => {
		const broken = clone(edge);
		broken.config.cluster.replicas = 2;
		broken.config.merge.leafnodes.remotes[0].tls.cert_file = "/etc/nats-certs/leafnodes/server.crt";
		broken.container.env.NATS_OPS_PASSWORD = "hunter2";
		const problems = k8s.checkEdgeValues("ap-south", REGION_IDS, broken, auth).join("\n");
		expect(problems).toMatch(/has a cluster block of 2 server\(s\)/);
		expect(problems).toMatch(/cert_file \/etc\/nats-certs\/leafnodes\/server\.crt is no file the chart mounts/);
		expect(problems).toMatch(/\$NATS_OPS_PASSWORD does not come from a key of a Secret/);
	});

	it("a hub under another name, without a route to a region, not mapping leaf certificates, not reachable, or open to clients", () => {
		const broken = clone(hub);
		delete broken.config.merge.server_name;
		broken.config.cluster.merge.routes.pop();
		broken.config.leafnodes.tls.merge = { verify: true };
		broken.service.merge.spec.type = "ClusterIP";
		broken.service.ports.nats.enabled = true;
		const problems = k8s.checkHubValues("ap-south", REGION_IDS, broken, auth).join("\n");
		expect(problems).toMatch(/server_name is \$POD_NAME, not hub-ap-south/);
		expect(problems).toMatch(/lists no route to the hub server of eu-central/);
		expect(problems).toMatch(/leaf nodes are not authenticated by their certificate/);
		expect(problems).toMatch(/its Service is not a LoadBalancer/);
		expect(problems).toMatch(/its Service exposes the client port beyond the cluster/);
	});
});
