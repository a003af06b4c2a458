import { randomBytes } from "node:crypto";
import type { ServerResponse } from "node:http";
import { createServer } from "node:http";

/**
 * What the fake answers for a code: a session for an openid, an errcode, or a failure of the
 * transport kind: never answering, answering headers then stalling, HTML, JSON without an
 * openid, HTTP 500, or a body far past any real answer's size.
 */
export type WxBehaviour =
	| { openid: string; unionid?: string }
	| { errcode: number; errmsg?: string }
	| "hang"
	| "stall-body"
	| "html"
	| "no-openid"
	| "http-500"
	| "huge";

export interface WxRequest {
	method: string;
	path: string;
	query: Record<string, string>;
}

export interface WechatServer {
	/** Base URL, as EDGEHOME_WX_API_URL. */
	url: string;
	appId: string;
	secret: string;
	/** Every request, in arrival order. */
	requests: WxRequest[];
	/** Code → behaviour. Codes `ok_<openid>` need no entry; any other unknown code is invalid (40029). */
	codes: Map<string, WxBehaviour>;
	stop(): Promise<void>;
}

const json = (res: ServerResponse, body: unknown, status = 200) => {
	// WeChat answers JSON as text/plain.
	res.writeHead(status, { "content-type": "text/plain" });
	res.end(JSON.stringify(body));
};

const rid = () => randomBytes(6).toString("hex");

/**
 * A local stand-in for WeChat's jscode2session on a loopback port the OS picks. Like the real
 * one it checks the app's credentials and spends a code on its first successful exchange (40163
 * after that).
 */
export async function startWechatServer(opts: { appId?: string; secret?: string } = {}): Promise<WechatServer> {
	const appId = opts.appId ?? `wx${randomBytes(8).toString("hex")}`;
	const secret = opts.secret ?? randomBytes(16).toString("hex");
	const requests: WxRequest[] = [];
	const codes = new Map<string, WxBehaviour>();
	const spent = new Set<string>();

	const server = createServer((req, res) => {
		const url = new URL(req.url ?? "/", "http://wechat.test");
		const query = Object.fromEntries(url.searchParams);
		requests.push({ method: req.method ?? "", path: url.pathname, query });
		if (req.method !== "GET" || url.pathname !== "/sns/jscode2session") return json(res, { errcode: 404, errmsg: "not found" }, 404);
		if (query.appid !== appId) return json(res, { errcode: 40013, errmsg: `invalid appid rid: ${rid()}` });
		if (query.secret !== secret) return json(res, { errcode: 40125, errmsg: `invalid appsecret rid: ${rid()}` });
		if (query.grant_type !== "authorization_code") return json(res, { errcode: 40002, errmsg: "invalid grant_type" });
		const code = query.js_code ?? "";
		if (spent.has(code)) return json(res, { errcode: 40163, errmsg: `code been used, rid: ${rid()}` });
		const behaviour = codes.get(code) ?? (code.startsWith("ok_") ? { openid: code.slice(3) } : { errcode: 40029, errmsg: `invalid code, rid: ${rid()}` });
		if (behaviour === "hang") return;
		if (behaviour === "stall-body") {
			res.writeHead(200, { "content-type": "text/plain" });
			res.write('{"openid":');
			return;
		}
		if (behaviour === "html") {
			res.writeHead(200, { "content-type": "text/html" });
			return res.end("<html><body>502 Bad Gateway</body></html>");
		}
		if (behaviour === "no-openid") return json(res, { foo: 1 });
		if (behaviour === "http-500") return json(res, { errcode: -1, errmsg: "internal" }, 500);
		if (behaviour === "huge") {
			// Chunked, no content-length: the client has to count.
			res.writeHead(200, { "content-type": "text/plain" });
			res.write('{"openid":"oHugeBody123","pad":"');
			for (let i = 0; i < 32; i++) res.write("x".repeat(4096));
			return res.end('"}');
		}
		if ("errcode" in behaviour) return json(res, behaviour);
		spent.add(code);
		json(res, { openid: behaviour.openid, session_key: randomBytes(16).toString("base64"), ...(behaviour.unionid ? { unionid: behaviour.unionid } : {}) });
	});

	await new Promise<void>((resolve, reject) => {
		server.once("error", reject);
		server.listen(0, "127.0.0.1", () => resolve());
	});
	const { port } = server.address() as { port: number };
	return {
		url: `http://127.0.0.1:${port}`,
		appId,
		secret,
		requests,
		codes,
		stop: () =>
			new Promise<void>(resolve => {
				// Hung and stalled answers hold their sockets open: close them, or close() would wait for them.
				server.closeAllConnections();
				server.close(() => resolve());
			})
	};
}
