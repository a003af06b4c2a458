import { expect } from "vitest";
import type { HttpAnswer } from "../harness/gateways.ts";

/** OWASP's API set, on every gateway answer whatever produced it. */
export const SECURITY_HEADERS = ["x-content-type-options", "x-frame-options", "strict-transport-security", "content-security-policy", "cache-control"] as const;

/** A gateway's error answer: status, stable code, the request id, the security headers, and nothing internal. */
export function expectError(res: HttpAnswer, status: number, code: string): void {
	expect({ status: res.status, code: res.body?.error?.code }).toEqual({ status, code });
	expect(res.body.error.requestId).toBe(res.headers.get("x-request-id"));
	expect(typeof res.body.error.message).toBe("string");
	for (const name of SECURITY_HEADERS) expect({ name, present: res.headers.has(name) }).toEqual({ name, present: true });
	// Nothing internal leaks: no stack frame, no service or node name.
	expect(res.text).not.toMatch(/\bat .+:\d+:\d+|node_modules|sv-user|sv-region|auth-jwt|auth-rbac|cn-east-all|Error:/);
}
