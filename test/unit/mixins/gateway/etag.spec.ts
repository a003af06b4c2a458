import { describe, expect, it } from "vitest";
import { weakEtag } from "../../../../mixins/gateway/etag.ts";

describe("weakEtag", () => {
	it("is a weak validator of the body's length and content, the same for its string and its bytes", () => {
		const body = JSON.stringify({ id: "u1", username: "vic", region: "cn-east" });
		expect(weakEtag(body)).toMatch(new RegExp(`^W/"${body.length.toString(16)}-[0-9a-z]{8,11}"$`));
		expect(weakEtag(body)).toBe(weakEtag(`${body}`));
		expect(weakEtag(Buffer.from(body, "latin1"))).toBe(weakEtag(body));
	});

	it("tells apart bodies that differ in one character, in length only, or in where a character sits", () => {
		const bodies = new Set<string>();
		for (let i = 0; i < 20_000; i++) bodies.add(JSON.stringify({ id: `u${i}`, n: i % 7 }));
		for (let i = 0; i < 300; i++) bodies.add("a".repeat(i));
		bodies.add('{"a":1,"b":2}').add('{"b":1,"a":2}');
		expect(new Set([...bodies].map(weakEtag)).size).toBe(bodies.size);
	});
});
