/**
 * A reader for the part of the NATS server configuration format that deploy/nats/*.conf uses:
 * `key: value`, `key = value` or `key value`; `{ maps }`, `[ arrays ]`; quoted or bare strings;
 * `#` and `//` comments; entries separated by newlines, commas or semicolons. Scalars stay strings.
 * Enough to check what a file declares; `nats-server -t` checks that the server accepts it.
 */
export type NatsValue = string | NatsValue[] | NatsMap;
export interface NatsMap {
	[key: string]: NatsValue;
}

type Token = { kind: "punct"; text: string; line: number } | { kind: "word"; text: string; line: number };

function tokenize(text: string): Token[] {
	const tokens: Token[] = [];
	let line = 1;
	let i = 0;
	while (i < text.length) {
		const c = text[i]!;
		if (c === "\n") {
			line++;
			i++;
		} else if (/\s/.test(c)) {
			i++;
		} else if (c === "#" || text.startsWith("//", i)) {
			while (i < text.length && text[i] !== "\n") i++;
		} else if ("{}[]:=,;".includes(c)) {
			tokens.push({ kind: "punct", text: c, line });
			i++;
		} else if (c === '"' || c === "'") {
			const end = text.indexOf(c, i + 1);
			if (end < 0) throw new Error(`line ${line}: unterminated string`);
			tokens.push({ kind: "word", text: text.slice(i + 1, end), line });
			line += text.slice(i, end).split("\n").length - 1;
			i = end + 1;
		} else {
			// A bare word may hold ':' (host:port), but not as its last character (a separator).
			let j = i;
			while (j < text.length && !/[\s{}[\],;=#]/.test(text[j]!) && !(text[j] === ":" && /[\s{["']/.test(text[j + 1] ?? " "))) j++;
			if (j === i) throw new Error(`line ${line}: unexpected "${c}"`);
			tokens.push({ kind: "word", text: text.slice(i, j), line });
			i = j;
		}
	}
	return tokens;
}

export function parseNatsConf(text: string): NatsMap {
	const tokens = tokenize(text);
	let pos = 0;
	const peek = () => tokens[pos];
	const fail = (what: string): never => {
		const t = peek();
		throw new Error(t ? `line ${t.line}: ${what}, got "${t.text}"` : `${what} at end of file`);
	};
	const isPunct = (text: string) => peek()?.kind === "punct" && peek()!.text === text;
	const skipSeparators = () => {
		while (isPunct(",") || isPunct(";")) pos++;
	};

	const value = (): NatsValue => {
		const t = peek() ?? fail("expected a value");
		if (t.kind === "word") {
			pos++;
			return t.text;
		}
		if (t.text === "{") {
			pos++;
			const map = entries("}");
			pos++;
			return map;
		}
		if (t.text === "[") {
			pos++;
			const items: NatsValue[] = [];
			for (skipSeparators(); !isPunct("]"); skipSeparators()) {
				if (!peek()) fail('expected "]"');
				items.push(value());
			}
			pos++;
			return items;
		}
		return fail("expected a value");
	};

	const entries = (close: string | undefined): NatsMap => {
		const map: NatsMap = {};
		for (skipSeparators(); close ? !isPunct(close) : peek() !== undefined; skipSeparators()) {
			const key = peek();
			if (key?.kind !== "word") fail(close ? `expected a key or "${close}"` : "expected a key");
			pos++;
			if (isPunct(":") || isPunct("=")) pos++;
			if (Object.hasOwn(map, key!.text)) throw new Error(`line ${key!.line}: "${key!.text}" set twice`);
			map[key!.text] = value();
		}
		return map;
	};

	return entries(undefined);
}

export function isNatsMap(v: NatsValue | undefined): v is NatsMap {
	return typeof v === "object" && v !== null && !Array.isArray(v);
}
