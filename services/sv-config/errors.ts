import { Errors } from "moleculer";

/** What sv-config answers. Types are the stable codes clients see. */

export class ValueTooLargeError extends Errors.MoleculerClientError {
	constructor(limit: number) {
		super(`value is larger than ${limit} bytes`, 413, "VALUE_TOO_LARGE", { limit });
	}
}

export class ConfigNotFoundError extends Errors.MoleculerClientError {
	constructor(key: string, version?: number) {
		super(
			version === undefined ? `config key "${key}" is not set` : `config key "${key}" has no version ${version}`,
			404,
			"NOT_FOUND",
			version === undefined ? { key } : { key, version }
		);
	}
}
