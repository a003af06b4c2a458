interface ErrorLike {
	message?: string;
	type?: string;
	data?: unknown;
}

/**
 * One line for an operator: the stable error type, and for a validation error each field with its
 * rule's message (Moleculer's own message only says "Parameters validation error!").
 */
export function describeError(err: unknown): string {
	const e = (err ?? {}) as ErrorLike;
	if (e.type === "VALIDATION_ERROR" && Array.isArray(e.data)) {
		const fields = (e.data as { field?: string; message?: string }[]).map(d => `${d.field ?? "?"}: ${d.message ?? "invalid"}`);
		if (fields.length) return `error: invalid ${fields.join("; ")}`;
	}
	return `error: ${e.message ?? String(err)}${e.type ? ` (${e.type})` : ""}`;
}
