/**
 * A weak ETag from a fast 53-bit hash of the body (cyrb53-style) and its length: a conditional GET
 * needs a validator, not a cryptographic digest, and SHA-1 per response was a measurable cost.
 */
export function weakEtag(body: string | Buffer): string {
	const text = typeof body === "string" ? body : body.toString("latin1");
	let h1 = 0xdeadbeef;
	let h2 = 0x41c6ce57;
	for (let i = 0; i < text.length; i++) {
		const c = text.charCodeAt(i);
		h1 = Math.imul(h1 ^ c, 2654435761);
		h2 = Math.imul(h2 ^ c, 1597334677);
	}
	h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
	h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
	// The 53 bits as two integers, the low 32 padded: one string of the same bits, without formatting a double in base 36 (slow).
	return `W/"${text.length.toString(16)}-${(2097151 & h2).toString(36)}${(h1 >>> 0).toString(36).padStart(7, "0")}"`;
}
