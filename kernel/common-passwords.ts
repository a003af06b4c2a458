import { dictionary } from "@zxcvbn-ts/language-common";

/**
 * Passwords attackers try first: zxcvbn-ts's list of ~49 000 passwords most common in breach
 * corpora (kept up by that project, lower-case). Only those a password rule can let through
 * (8 characters or more) are kept; loading and indexing take about 20 ms once per process.
 */
const COMMON = new Set(dictionary["passwords-common"].filter(p => p.length >= 8));

/** Whether the password is on the list, ignoring case and compatibility forms ("PASSWORD1", "ｐａｓｓｗｏｒｄ1"). */
export function isCommonPassword(password: string): boolean {
	return COMMON.has(password.normalize("NFKC").toLowerCase());
}
