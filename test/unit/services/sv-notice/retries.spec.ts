import { Errors } from "moleculer";
import { describe, expect, it } from "vitest";
import { retried, retryPolicyFromEnv } from "../../../../services/sv-notice/announcements.ts";

/** The retries of an announcement's sends (announcements.ts), without a broker. */
describe("announcement sends: retried", () => {
	const policy = { attempts: 4, firstDelayMs: 100 };

	it("waits between attempts, doubling from the first delay, each wait between half and all of it", async () => {
		const waits: number[] = [];
		let calls = 0;
		const outcome = await retried(
			async () => {
				if (++calls < 4) throw new Errors.MoleculerServerError("store down", 503, "STORE_DOWN");
				return "sent";
			},
			policy,
			async ms => waits.push(ms)
		);
		expect(outcome).toEqual({ value: "sent" });
		expect(waits).toHaveLength(3);
		waits.forEach((ms, i) => {
			expect(ms).toBeGreaterThanOrEqual(50 * 2 ** i);
			expect(ms).toBeLessThanOrEqual(100 * 2 ** i);
		});
	});

	it("gives up after the last attempt with the error's type and message; a refusal waiting cannot heal fails at once", async () => {
		const waits: number[] = [];
		const down = await retried(
			() => Promise.reject(new Errors.MoleculerServerError("store down", 503, "STORE_DOWN")),
			policy,
			async ms => waits.push(ms)
		);
		expect(down).toEqual({ error: { type: "STORE_DOWN", message: "store down" }, attempts: 4 });
		expect(waits).toHaveLength(3);
		const refused = await retried(
			() => Promise.reject(new Errors.MoleculerClientError("no such user", 404, "USER_NOT_FOUND")),
			policy,
			async () => 0
		);
		expect(refused).toEqual({ error: { type: "USER_NOT_FOUND", message: "no such user" }, attempts: 1 });
		const moving = await retried(
			() => Promise.reject(new Errors.MoleculerClientError("moving", 409, "USER_MOVING")),
			policy,
			async () => 0
		);
		expect(moving).toMatchObject({ attempts: 4 });
	});

	it("takes its policy from the environment, refusing waits that would outlast half the run's hold", () => {
		expect(retryPolicyFromEnv({}, 30_000)).toEqual({ attempts: 5, firstDelayMs: 200 });
		expect(retryPolicyFromEnv({ EDGEHOME_NOTICE_ANNOUNCE_ATTEMPTS: "3", EDGEHOME_NOTICE_ANNOUNCE_RETRY_MS: "20" }, 1000)).toEqual({
			attempts: 3,
			firstDelayMs: 20
		});
		expect(() => retryPolicyFromEnv({ EDGEHOME_NOTICE_ANNOUNCE_ATTEMPTS: "3", EDGEHOME_NOTICE_ANNOUNCE_RETRY_MS: "200" }, 1000)).toThrow(
			'environment EDGEHOME_NOTICE_ANNOUNCE_RETRY_MS="200": expected retries of 600 ms at most, under half of EDGEHOME_NOTICE_ANNOUNCE_LEASE_MS (1000 ms)'
		);
		expect(() => retryPolicyFromEnv({ EDGEHOME_NOTICE_ANNOUNCE_ATTEMPTS: "0" }, 30_000)).toThrow(
			'environment EDGEHOME_NOTICE_ANNOUNCE_ATTEMPTS="0": expected an integer in 1..20'
		);
	});
});
