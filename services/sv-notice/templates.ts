import currencyCodes from "currency-codes";
import Handlebars from "handlebars";
import type { Category, Locale } from "./categories.ts";
import { DEFAULT_LOCALE } from "./categories.ts";
import { TemplateDataMissingError, TemplateNotFoundError } from "./errors.ts";

/**
 * The notices' templates, per category and locale, each with a title, a plain-text body and an
 * HTML body. Handlebars renders them: `{{…}}` escapes HTML, and strict mode makes a field the
 * send did not carry an error at send time (TEMPLATE_DATA_MISSING), never a broken message.
 * A locale without its own text falls back to English.
 */

interface Texts {
	title: string;
	text: string;
	html: string;
}

type Catalogue = Record<Category, Record<string, Partial<Record<Locale, Texts>> & { en: Texts }>>;

const CATALOGUE: Catalogue = {
	security: {
		"new-login": {
			en: {
				title: "New sign-in to your account",
				text: "Your account was signed in from a new {{client}} client at {{ip}} on {{at}}. If this was not you, change your password and end that session.",
				html: "<p>Your account was signed in from a new <b>{{client}}</b> client at <b>{{ip}}</b> on {{at}}.</p><p>If this was not you, change your password and end that session.</p>"
			},
			zh: {
				title: "您的账户有新的登录",
				text: "您的账户于 {{at}} 在 {{ip}} 从新的 {{client}} 客户端登录。如果不是您本人，请修改密码并结束该会话。",
				html: "<p>您的账户于 {{at}} 在 <b>{{ip}}</b> 从新的 <b>{{client}}</b> 客户端登录。</p><p>如果不是您本人，请修改密码并结束该会话。</p>"
			},
			de: {
				title: "Neue Anmeldung bei Ihrem Konto",
				text: "Ihr Konto wurde am {{at}} von {{ip}} mit einem neuen {{client}}-Client angemeldet. Waren Sie das nicht, ändern Sie Ihr Passwort und beenden Sie diese Sitzung.",
				html: "<p>Ihr Konto wurde am {{at}} von <b>{{ip}}</b> mit einem neuen <b>{{client}}</b>-Client angemeldet.</p><p>Waren Sie das nicht, ändern Sie Ihr Passwort und beenden Sie diese Sitzung.</p>"
			}
		}
	},
	wallet: {
		"transfer-received": {
			en: {
				title: "You received {{money amount currency}}",
				text: "{{from}} sent you {{money amount currency}}.",
				html: "<p><b>{{from}}</b> sent you <b>{{money amount currency}}</b>.</p>"
			},
			zh: {
				title: "您收到 {{money amount currency}}",
				text: "{{from}} 向您转账 {{money amount currency}}。",
				html: "<p><b>{{from}}</b> 向您转账 <b>{{money amount currency}}</b>。</p>"
			}
		},
		"transfer-failed": {
			en: {
				title: "Your transfer of {{money amount currency}} failed",
				text: "Your transfer of {{money amount currency}} to {{to}} could not be completed ({{reason}}). The amount is back in your wallet.",
				html: "<p>Your transfer of <b>{{money amount currency}}</b> to <b>{{to}}</b> could not be completed ({{reason}}).</p><p>The amount is back in your wallet.</p>"
			}
		}
	},
	account: {
		"move-completed": {
			en: {
				title: "Your account moved to {{region}}",
				text: "Your account and its data now live in the {{region}} region.",
				html: "<p>Your account and its data now live in the <b>{{region}}</b> region.</p>"
			}
		}
	},
	announcement: {
		message: {
			en: { title: "{{title}}", text: "{{body}}", html: "<p>{{body}}</p>" }
		}
	}
};

export interface Rendered {
	title: string;
	text: string;
	html: string;
	locale: Locale;
}

/** Minor digits of the ISO 4217 codes met so far: the data set is searched entry by entry, three times a notice. */
const minorDigits = new Map<string, number>();

function digitsOf(currency: string): number {
	const known = minorDigits.get(currency);
	if (known !== undefined) return known;
	const found = currencyCodes.code(currency)?.digits;
	// Only real codes are kept (at most the data set's): a send's data names any string it likes.
	if (found !== undefined) minorDigits.set(currency, found);
	return found ?? 2;
}

/** Minor units as the currency writes them: "12345" CNY → "123.45 CNY", "500" JPY → "500 JPY". */
function money(amount: unknown, currency: unknown): string {
	const digits = digitsOf(String(currency));
	const raw = String(amount);
	if (!/^-?[0-9]+$/.test(raw)) return `${raw} ${String(currency)}`;
	const negative = raw.startsWith("-");
	const units = (negative ? raw.slice(1) : raw).padStart(digits + 1, "0");
	const major = digits ? `${units.slice(0, -digits)}.${units.slice(-digits)}` : units;
	return `${negative ? "-" : ""}${major} ${String(currency)}`;
}

const engine = Handlebars.create();
engine.registerHelper("money", money);

type Compiled = { title: HandlebarsTemplateDelegate; text: HandlebarsTemplateDelegate; html: HandlebarsTemplateDelegate };
const compiled = new Map<string, Compiled>();

function compile(key: string, texts: Texts): Compiled {
	let found = compiled.get(key);
	if (!found) {
		const strict = { strict: true };
		// Titles and plain text are not HTML: they are not escaped (the HTML body is).
		const plain = { ...strict, noEscape: true };
		found = { title: engine.compile(texts.title, plain), text: engine.compile(texts.text, plain), html: engine.compile(texts.html, strict) };
		compiled.set(key, found);
	}
	return found;
}

export function hasTemplate(category: Category, template: string): boolean {
	return Boolean(CATALOGUE[category]?.[template]);
}

/** The notice as the user reads it, in `locale` when the template has it, else English. */
export function render(category: Category, template: string, data: Record<string, unknown>, locale: Locale): Rendered {
	const variants = CATALOGUE[category]?.[template];
	if (!variants) throw new TemplateNotFoundError(category, template);
	const used = variants[locale] ? locale : DEFAULT_LOCALE;
	const texts = variants[used] ?? variants.en;
	const c = compile(`${category}/${template}/${used}`, texts);
	try {
		// Only the data's own fields: a template never reaches a prototype's.
		const own = Object.fromEntries(Object.entries(data));
		return { title: c.title(own), text: c.text(own), html: c.html(own), locale: used };
	} catch (err) {
		const field = /"([^"]+)" not defined/.exec((err as Error).message)?.[1];
		if (field) throw new TemplateDataMissingError(template, field);
		throw err;
	}
}
