import { randomBytes } from "node:crypto";
import { isProduction } from "./bus-credentials.ts";
import type { Env } from "./env.ts";
import { EnvError } from "./env.ts";

const NAME = /^[a-z][a-z0-9-]{0,31}$/;
export const MIN_CAPABILITY_KEY_BYTES = 32;

/**
 * The HMAC keys of the capabilities this node holds (`restricted: "<capability>"` on an action or
 * event): per capability, the first key signs and every key verifies, so a key is rotated by
 * listing the new one first on every node, then dropping the old one.
 */
export class CapabilityKeys {
	private readonly keys: Map<string, Buffer[]>;
	/** Embedded: every broker is in this process, so a key is made on first use and shared by all. */
	private readonly makeMissing: boolean;

	private constructor(keys: Map<string, Buffer[]>, makeMissing: boolean) {
		this.keys = keys;
		this.makeMissing = makeMissing;
	}

	/** `name:base64[,name:base64…]`, e.g. `mint:…,grant:…`. */
	static parse(raw: string): CapabilityKeys {
		const keys = new Map<string, Buffer[]>();
		for (const entry of raw
			.split(",")
			.map(e => e.trim())
			.filter(Boolean)) {
			const colon = entry.indexOf(":");
			const name = entry.slice(0, colon);
			const key = Buffer.from(entry.slice(colon + 1), "base64");
			if (colon < 0 || !NAME.test(name) || key.length < MIN_CAPABILITY_KEY_BYTES)
				throw new EnvError(
					"EDGEHOME_CAPABILITY_KEYS",
					"(hidden)",
					`name:base64 entries, a name of a-z, 0-9 and -, a key of at least ${MIN_CAPABILITY_KEY_BYTES} bytes (openssl rand -base64 32)`
				);
			keys.set(name, [...(keys.get(name) ?? []), key]);
		}
		return new CapabilityKeys(keys, false);
	}

	static none(): CapabilityKeys {
		return new CapabilityKeys(new Map(), false);
	}

	static inProcess(): CapabilityKeys {
		return new CapabilityKeys(new Map(), true);
	}

	/** The key that signs for `capability`, undefined when this node does not hold it. */
	signer(capability: string): Buffer | undefined {
		return this.verifiers(capability)[0];
	}

	verifiers(capability: string): readonly Buffer[] {
		let keys = this.keys.get(capability);
		if (!keys && this.makeMissing) this.keys.set(capability, (keys = [randomBytes(32)]));
		return keys ?? [];
	}
}

let processKeys: CapabilityKeys | undefined;

/**
 * This node's capability keys: EDGEHOME_CAPABILITY_KEYS when set; otherwise the embedded cluster
 * shares keys made in this process, a production node holds none (it can call no restricted action,
 * and refuses to run one), and a NATS node outside production gets undefined: restricted calls are
 * not checked (tests and development on an open bus).
 */
export function capabilityKeys(env: Env, transport: "embedded" | "nats"): CapabilityKeys | undefined {
	if (env.EDGEHOME_CAPABILITY_KEYS) return CapabilityKeys.parse(env.EDGEHOME_CAPABILITY_KEYS);
	if (transport === "embedded") return (processKeys ??= CapabilityKeys.inProcess());
	return isProduction(env) ? CapabilityKeys.none() : undefined;
}
