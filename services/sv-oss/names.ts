import { FileNameInvalidError } from "./errors.ts";

/** Control characters (C0, DEL, C1) and the characters that reorder text (bidi marks, embeddings, overrides, isolates). */
// biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/u;
/** Characters Windows and common shells treat as special in a name; replaced, since they carry no meaning in ours. */
const AWKWARD = /[<>:"|?*]/g;

/**
 * The name a file is kept under: the last segment of whatever path the client sent, in NFC,
 * without leading or trailing blanks and dots, at most `maxLength` characters (its extension kept
 * when it is cut). A name holding control or bidi characters is refused rather than cleaned: they
 * are how a name is made to read as something it is not (`photo\u202Egpj.exe`).
 */
export function safeFileName(raw: string, maxLength: number): string {
	if (UNSAFE.test(raw)) throw new FileNameInvalidError("it holds control or bidirectional-text characters");
	const last = raw.normalize("NFC").split(/[/\\]/).pop() ?? "";
	const name = last.replace(AWKWARD, "_").replace(/^[\s.]+|[\s.]+$/g, "");
	if (name === "") throw new FileNameInvalidError("it is empty once its path is taken off");
	const chars = [...name];
	if (chars.length <= maxLength) return name;
	const dot = name.lastIndexOf(".");
	const ext = dot > 0 ? [...name.slice(dot)] : [];
	const keep = ext.length > 0 && ext.length <= 16 ? ext : [];
	return chars.slice(0, maxLength - keep.length).join("") + keep.join("");
}

/**
 * `Content-Disposition: attachment` for a download of `name`: an ASCII fallback (anything else
 * as `_`, quotes and backslashes too) and the exact name in RFC 5987 form.
 */
export function attachmentHeader(name: string): string {
	const ascii = name.replace(/[^\x20-\x7e]|["\\]/g, "_");
	return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(name)}`;
}
