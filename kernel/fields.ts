import { iso31661 } from "iso-3166";
import { USER_ID } from "../regions/directory/entries.ts";
import { REGION_ID } from "../regions/region.ts";
import { isCommonPassword } from "./common-passwords.ts";

/**
 * Parameter rules that several services and the gateways validate the same way, defined once so
 * an internal action and the public route in front of it can never disagree. Every string is
 * capped; fastest-validator `messages` say what a client sent wrong.
 */

export const userId = { type: "string", max: 26, pattern: USER_ID, messages: { stringPattern: "must be a 26-character user id" } } as const;
export const regionId = { type: "string", max: 32, pattern: REGION_ID, messages: { stringPattern: "must be a region id" } } as const;
export const sessionId = { type: "string", max: 36, pattern: /^[0-9a-f-]{36}$/, messages: { stringPattern: "must be a session id" } } as const;
export const moveId = {
	type: "string",
	max: 36,
	pattern: /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
	messages: { stringPattern: "must be a move id (UUID)" }
} as const;

/** fastest-validator's checker for what a type and pattern cannot say: push an error, give the value back. */
type Checker = (value: string, errors: { type: string }[]) => string;

/** Letters, digits and `_ . -`; at least one letter or digit, and no final dot ("...", "ann."). */
export const username = {
	type: "string",
	min: 3,
	max: 32,
	pattern: /^(?=[a-z0-9_.-]*[a-z0-9])[a-z0-9_.-]*[a-z0-9_-]$/,
	messages: { stringPattern: "username may hold only a-z, 0-9, '_', '.' and '-', needs a letter or digit, and must not end in '.'" }
} as const;

const refuseCommonPassword: Checker = (value, errors) => {
	if (isCommonPassword(value)) errors.push({ type: "commonPassword" });
	return value;
};
export const password = {
	type: "string",
	min: 8,
	max: 128,
	custom: refuseCommonPassword,
	messages: { commonPassword: "password is one of the most common ones: choose another" }
} as const;

/** A login as typed (username, e-mail or phone): its form is the lookup's to judge. */
export const login = { type: "string", min: 3, max: 254 } as const;
/** A password as presented to be checked: no rule beyond the cap, so a password set under older rules still logs in. */
export const givenPassword = { type: "string", min: 1, max: 128 } as const;

/** C0 and C1 controls, DEL and NUL: never part of an address, and a way to split one in logs or headers. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
/** An address is at most 254 octets (RFC 5321), counted in UTF-8: 254 characters of another script would overflow its stored, sealed form. */
const MAX_EMAIL_BYTES = 254;
const checkEmail: Checker = (value, errors) => {
	// A nullable field (PATCH /me) calls this with null too: only strings are checked.
	if (typeof value !== "string") return value;
	if (CONTROL.test(value)) errors.push({ type: "emailControl" });
	else if (Buffer.byteLength(value) > MAX_EMAIL_BYTES) errors.push({ type: "emailBytes" });
	return value;
};
export const email = {
	type: "email",
	max: MAX_EMAIL_BYTES,
	optional: true,
	custom: checkEmail,
	messages: { emailControl: "e-mail must not hold control characters", emailBytes: `e-mail must be at most ${MAX_EMAIL_BYTES} bytes in UTF-8` }
} as const;
export const phone = {
	type: "string",
	max: 16,
	pattern: /^\+[1-9][0-9]{1,14}$/,
	optional: true,
	messages: { stringPattern: "phone must be in E.164 form, e.g. +6591234567" }
} as const;

/** Codes ISO has assigned to a country (iso-3166, from ISO's own list): "ZZ", "XX" or a reserved "UK" are none. */
const ASSIGNED_COUNTRIES = iso31661.map(c => c.alpha2);
export const country = {
	type: "string",
	max: 2,
	enum: ASSIGNED_COUNTRIES,
	optional: true,
	messages: { stringEnum: "country must be an assigned ISO 3166-1 alpha-2 code, e.g. DE" }
} as const;

/** A role shaped like a user id would be granted to that user by casbin's g(r.sub, p.sub): refused. */
export const ROLE_NAME = /^(?![0-9a-z]{26}$)[a-z][a-z0-9_-]{1,31}$/;
export const role = {
	type: "string",
	max: 32,
	pattern: ROLE_NAME,
	messages: { stringPattern: "role must be 2-32 of [a-z0-9_-], start with a letter, and not have the shape of a user id" }
} as const;
export const resource = {
	type: "string",
	max: 64,
	pattern: /^[a-z][a-z0-9_.-]{0,63}$/,
	messages: { stringPattern: "resource must be 1-64 of [a-z0-9_.-], starting with a letter" }
} as const;
export const action = {
	type: "string",
	max: 32,
	pattern: /^([a-z][a-z0-9_-]{0,31}|\*)$/,
	messages: { stringPattern: "action must be 1-32 of [a-z0-9_-], starting with a letter, or *" }
} as const;
