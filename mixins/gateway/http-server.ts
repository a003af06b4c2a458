import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { createServer } from "node:http";
import type { Socket } from "node:net";
import { SECURITY_HEADERS } from "./security-headers.ts";
import { MAX_HEADER_BYTES } from "./settings.ts";
import { traceContext } from "./trace-context.ts";

const SECURITY_LINES = SECURITY_HEADERS.map(([name, value]) => `${name}: ${value}\r\n`).join("");

/**
 * A gateway's HTTP server: headers capped at MAX_HEADER_BYTES. Node refuses a request it cannot
 * parse before any handler runs, so that answer (431 past the cap, else 400) is written on the
 * socket here, in the gateway's error shape and with the same security headers as every answer.
 */
export function gatewayServer(handler: (req: IncomingMessage, res: ServerResponse) => void, requestTimeout: number): Server {
	const server = createServer({ maxHeaderSize: MAX_HEADER_BYTES }, handler);
	server.requestTimeout = requestTimeout;
	server.on("clientError", (err: NodeJS.ErrnoException, socket: Socket) => {
		if (!socket.writable) return socket.destroy();
		const tooLarge = err.code === "HPE_HEADER_OVERFLOW";
		const { requestId } = traceContext({});
		const body = JSON.stringify({
			error: tooLarge
				? { code: "HEADERS_TOO_LARGE", message: `request headers are larger than ${MAX_HEADER_BYTES} bytes`, requestId }
				: { code: "BAD_REQUEST", message: "malformed request", requestId }
		});
		socket.end(
			`HTTP/1.1 ${tooLarge ? "431 Request Header Fields Too Large" : "400 Bad Request"}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nX-Request-Id: ${requestId}\r\n${SECURITY_LINES}Connection: close\r\n\r\n${body}`
		);
	});
	return server;
}
