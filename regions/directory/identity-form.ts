import type { IdentityKind } from "./entries.ts";

/**
 * The one form in which identities are compared, indexed and looked up, so two spellings of the
 * same address can never be two identities (nor one user's change of spelling free its own).
 * NFKC, not NFC: it also folds compatibility forms (fullwidth "＠", ligatures, superscripts) that
 * NFC keeps apart. E-mail and username ignore case; NFKC runs again after lower-casing because a
 * few lower-case mappings (e.g. "İ") leave a string that is not NFKC.
 */
export function identityForm(kind: IdentityKind, value: string): string {
	const v = value.normalize("NFKC").trim();
	return kind === "email" || kind === "username" ? v.toLowerCase().normalize("NFKC") : v;
}

/** Whether two values name the same identity of this kind. */
export function sameIdentity(kind: IdentityKind, a: string, b: string): boolean {
	return identityForm(kind, a) === identityForm(kind, b);
}
