export type Env = Record<string, string | undefined>;

/** A wrong environment value is a configuration error, named, never a silent default. */
export class EnvError extends Error {
	constructor(name: string, value: string, expected: string) {
		super(`environment ${name}="${value}": expected ${expected}`);
		this.name = "EnvError";
	}
}

export function envInt(env: Env, name: string, fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
	const raw = env[name];
	if (raw === undefined || raw === "") return fallback;
	const n = Number(raw);
	if (!Number.isInteger(n) || n < min || n > max) throw new EnvError(name, raw, `an integer in ${min}..${max}`);
	return n;
}

export function envFloat(env: Env, name: string, fallback: number, min: number, max: number): number {
	const raw = env[name];
	if (raw === undefined || raw === "") return fallback;
	const n = Number(raw);
	if (!Number.isFinite(n) || n < min || n > max) throw new EnvError(name, raw, `a number in ${min}..${max}`);
	return n;
}

export function envChoice<T extends string>(env: Env, name: string, choices: readonly T[], fallback: T): T {
	const raw = env[name];
	if (raw === undefined || raw === "") return fallback;
	if (!(choices as readonly string[]).includes(raw)) throw new EnvError(name, raw, `one of ${choices.join(", ")}`);
	return raw as T;
}

export function envString(env: Env, name: string, fallback: string): string {
	const raw = env[name];
	return raw === undefined || raw === "" ? fallback : raw;
}
