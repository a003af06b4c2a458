import type { IncomingMessage } from "node:http";
import { BlockList, isIP } from "node:net";

/** `::ffff:10.0.0.1` is 10.0.0.1: compare and count IPv4 peers in one form. */
function normalize(ip: string): string {
	const trimmed = ip.trim();
	return trimmed.startsWith("::ffff:") && isIP(trimmed.slice(7)) === 4 ? trimmed.slice(7) : trimmed;
}

/**
 * Trusted proxies from `10.0.0.0/8,192.168.1.5,::1`-style lists; a bad entry is a configuration
 * error. None (the usual edge) is null, so no request pays for an address check.
 */
export function trustedProxies(list: string): BlockList | null {
	const blocks = new BlockList();
	for (const entry of list
		.split(",")
		.map(s => s.trim())
		.filter(Boolean)) {
		const [addr = "", bits] = entry.split("/");
		const family = isIP(addr);
		if (!family) throw new Error(`trusted proxy "${entry}" is not an IP address or CIDR`);
		const type = family === 6 ? "ipv6" : "ipv4";
		if (bits === undefined) blocks.addAddress(addr, type);
		else {
			const prefix = Number(bits);
			if (!Number.isInteger(prefix) || prefix < 0 || prefix > (family === 6 ? 128 : 32)) throw new Error(`trusted proxy "${entry}" has a bad prefix length`);
			blocks.addSubnet(addr, prefix, type);
		}
	}
	return blocks.rules.length ? blocks : null;
}

function trusted(blocks: BlockList, ip: string): boolean {
	const family = isIP(ip);
	return family !== 0 && blocks.check(ip, family === 6 ? "ipv6" : "ipv4");
}

/**
 * The client's address. X-Forwarded-For counts only when the direct peer is a trusted proxy; then
 * the nearest address that is not itself a trusted proxy is the client (anything further left was
 * written by the client and proves nothing).
 */
export function clientIp(req: IncomingMessage, proxies: BlockList | null): string {
	const peer = normalize(req.socket.remoteAddress ?? "");
	if (!proxies || !trusted(proxies, peer)) return peer;
	const header = req.headers["x-forwarded-for"];
	const hops = (Array.isArray(header) ? header.join(",") : (header ?? "")).split(",").map(normalize).filter(Boolean);
	for (let i = hops.length - 1; i >= 0; i--) {
		const hop = hops[i]!;
		if (!isIP(hop)) return peer;
		if (!trusted(proxies, hop)) return hop;
	}
	return hops[0] ?? peer;
}
