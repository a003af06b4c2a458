import type { SecureNats } from "./secure-nats.ts";

/**
 * The environment of a node that logs in to `nats` as `user` (deploy/nats/auth.conf) over its TLS,
 * in the run's own namespaces (`t<run>-<region>`), with no ops port and no cache.
 */
export function secureLoginEnv(nats: SecureNats, user: "service" | "ops", run: string, extra: Record<string, string> = {}): Record<string, string> {
	return {
		EDGEHOME_NATS_URL: nats.url,
		EDGEHOME_NATS_USER: user,
		EDGEHOME_NATS_PASSWORD: user === "service" ? nats.passwords.NATS_SERVICE_PASSWORD : nats.passwords.NATS_OPS_PASSWORD,
		EDGEHOME_NATS_CA: nats.caFile,
		EDGEHOME_NAMESPACE_PREFIX: `t${run}-`,
		EDGEHOME_METRICS_PORT: "off",
		EDGEHOME_CACHER: "off",
		...extra
	};
}
