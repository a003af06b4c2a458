import { defineConfig } from "vitest/config";

export default defineConfig({
	test: {
		include: ["test/**/*.spec.ts"],
		// Two cores: multi-region files start several nats-server processes; keep them from piling up.
		maxWorkers: 2,
		testTimeout: 30_000,
		hookTimeout: 60_000,
		pool: "forks",
		env: {
			EDGEHOME_LOG_LEVEL: "warn",
			EDGEHOME_LOG_FORMAT: "json",
			// A test-only key (never used outside tests): sv-user needs one to start.
			EDGEHOME_PII_KEYS: `t1:${Buffer.alloc(32, 7).toString("base64")}`
		}
	}
});
