import type { TransformCallback } from "node:stream";
import { Transform } from "node:stream";
import { fileTypeFromBuffer } from "file-type";
import { FileTypeMismatchError, FileTypeNotAllowedError } from "./errors.ts";

/** Bytes looked at to tell a type: what the \`file-type\` package reads for its signatures. */
const SAMPLE_BYTES = 4100;

/** The type of bytes no signature matched and that are not text. */
export const UNKNOWN_TYPE = "application/octet-stream";

/** Control characters that plain text does not hold (all but tab, line feed, form feed, carriage return). */
// biome-ignore lint/suspicious/noControlCharactersInRegex: telling text from binary is the point
const BINARY = /[\u0000-\u0008\u000b\u000e-\u001f\u007f]/;
const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Whether `head` reads as UTF-8 text, allowing a character cut off at its end. */
function isText(head: Buffer, whole: boolean): boolean {
	for (let cut = 0; cut <= (whole ? 0 : 3) && cut < head.length; cut++) {
		try {
			return !BINARY.test(utf8.decode(head.subarray(0, head.length - cut)));
		} catch {
			// A multi-byte character cut at the end of the sample: try without its first bytes.
		}
	}
	return head.length === 0;
}

/** The media type the bytes are, from their signature (the `file-type` package), or text, or UNKNOWN_TYPE. */
export async function detectType(head: Buffer, whole: boolean): Promise<string> {
	const found = await fileTypeFromBuffer(head);
	if (found) return found.mime;
	return isText(head, whole) ? "text/plain" : UNKNOWN_TYPE;
}

/** A declared type as compared: lower case, without parameters; none (or the generic octet stream) declares nothing. */
export function declaredType(raw: string | undefined): string | undefined {
	const type = raw?.split(";")[0]?.trim().toLowerCase();
	return !type || type === UNKNOWN_TYPE ? undefined : type;
}

/** The type kept: the detected one, if it is allowed and is what the client declared (when it declared one). */
export function acceptedType(declared: string | undefined, detected: string, allowed: readonly string[]): string {
	if (!allowed.includes(detected)) throw new FileTypeNotAllowedError(detected);
	if (declared !== undefined && declared !== detected) throw new FileTypeMismatchError(declared, detected);
	return detected;
}

/**
 * Passes an upload through once its first bytes have shown what it is: it holds back the first
 * bytes a signature needs (a few kB), decides, and then streams on; a refused type fails the
 * stream before anything past those bytes is read. `type` holds the decision once made.
 */
export class TypeGate extends Transform {
	type: string | undefined;
	private head: Buffer[] = [];
	private held = 0;
	private readonly declared: string | undefined;
	private readonly allowed: readonly string[];

	constructor(declared: string | undefined, allowed: readonly string[]) {
		super();
		this.declared = declared;
		this.allowed = allowed;
	}

	override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
		if (this.type !== undefined) done(null, chunk);
		else {
			this.head.push(chunk);
			this.held += chunk.length;
			if (this.held < SAMPLE_BYTES) done();
			else this.decide(false, done);
		}
	}

	override _flush(done: TransformCallback): void {
		if (this.type !== undefined) done();
		else this.decide(true, done);
	}

	private decide(whole: boolean, done: TransformCallback): void {
		const head = Buffer.concat(this.head);
		this.head = [];
		detectType(head, whole).then(
			detected => {
				try {
					this.type = acceptedType(this.declared, detected, this.allowed);
				} catch (err) {
					done(err as Error);
					return;
				}
				done(null, head);
			},
			(err: Error) => done(err)
		);
	}
}
