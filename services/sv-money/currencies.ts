import currencyCodes from "currency-codes";
import { CurrencyNotSupportedError } from "./errors.ts";

/**
 * Currencies from ISO 4217 (the currency-codes data set), with their minor units: JPY has none, USD
 * two, BHD three. Codes that are not money (gold, SDR, test and "no currency" codes, listed by ISO
 * under "Zz…" entities) are refused. A region may hold fewer: EDGEHOME_MONEY_CURRENCIES lists them.
 */

export interface Currency {
	code: string;
	/** Minor units per major unit, as a power of ten. */
	digits: number;
}

const ISO: ReadonlyMap<string, Currency> = new Map(
	currencyCodes.data.filter(c => !c.countries.some(country => country.startsWith("Zz"))).map(c => [c.code, { code: c.code, digits: c.digits }])
);

export const CURRENCY_CODE = /^[A-Z]{3}$/;

/** The currencies a region holds: every ISO one, or the configured list (each must be ISO). */
export class Currencies {
	private readonly held: ReadonlyMap<string, Currency>;

	constructor(configured?: string) {
		if (!configured?.trim()) {
			this.held = ISO;
			return;
		}
		const codes = configured.split(",").map(c => c.trim().toUpperCase());
		const unknown = codes.filter(c => !ISO.has(c));
		if (unknown.length) throw new Error(`EDGEHOME_MONEY_CURRENCIES names codes that are not ISO 4217 money: ${unknown.join(", ")}`);
		this.held = new Map(codes.map(c => [c, ISO.get(c)!]));
	}

	/** The currency of `code`, or CURRENCY_NOT_SUPPORTED. */
	get(code: string): Currency {
		const found = this.held.get(code);
		if (!found) throw new CurrencyNotSupportedError(code);
		return found;
	}

	has(code: string): boolean {
		return this.held.has(code);
	}
}
