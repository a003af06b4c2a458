import { describe, expect, it } from "vitest";
import type { IdentityKind } from "../../../../regions/directory/entries.ts";
import { identityForm, sameIdentity } from "../../../../regions/directory/identity-form.ts";

describe("identity form", () => {
	it("ignores case of e-mails and usernames, and surrounding space", () => {
		expect(identityForm("email", " Vic1@Example.COM ")).toBe("vic1@example.com");
		expect(identityForm("username", "Ann.Lee")).toBe("ann.lee");
		expect(sameIdentity("email", "Vic1@Example.com", "vic1@example.com")).toBe(true);
	});

	it("takes a combining accent and its precomposed letter as one", () => {
		expect(identityForm("email", "rene\u0301@example.fr")).toBe("ren\u00e9@example.fr");
		expect(sameIdentity("email", "RENE\u0301@example.fr", "ren\u00e9@example.fr")).toBe(true);
	});

	it("folds compatibility forms that NFC keeps apart (NFKC): fullwidth letters, digits and signs, ligatures", () => {
		const cases: [IdentityKind, string, string][] = [
			["email", "\uff4a\uff4f\uff59@example.jp", "joy@example.jp"],
			["email", "joy\uff20example.jp", "joy@example.jp"],
			["email", "\ufb01sh@example.com", "fish@example.com"],
			["phone", "\uff0b\uff18\uff11\uff19\uff10\uff11\uff12\uff13", "+8190123"],
			["username", "\uff41\uff4e\uff4e", "ann"]
		];
		for (const [kind, odd, plain] of cases) {
			// NFC alone would leave them different identities.
			expect(odd.normalize("NFC")).not.toBe(plain);
			expect(identityForm(kind, odd)).toBe(plain);
		}
	});

	it("keeps case where it is meaningful: phone numbers and WeChat openids", () => {
		expect(identityForm("wechat", "oAbC-123_xyz")).toBe("oAbC-123_xyz");
		expect(sameIdentity("wechat", "oAbC-123", "oabc-123")).toBe(false);
	});

	it("tells different addresses apart", () => {
		expect(sameIdentity("email", "vic1@example.com", "vic2@example.com")).toBe(false);
		expect(sameIdentity("email", "rene@example.fr", "ren\u00e9@example.fr")).toBe(false);
	});

	it("is stable: the form of a form is itself, for every code point", () => {
		const unstable: string[] = [];
		for (let cp = 0; cp <= 0x2ffff; cp++) {
			if (cp >= 0xd800 && cp <= 0xdfff) continue;
			const once = identityForm("email", `a${String.fromCodePoint(cp)}b`);
			if (identityForm("email", once) !== once) unstable.push(cp.toString(16));
		}
		expect(unstable).toEqual([]);
	});
});
