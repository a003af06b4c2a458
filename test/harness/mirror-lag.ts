import type { Server as NetServer, Socket } from "node:net";
import { connect, createServer } from "node:net";
import type { LinkFront } from "./edge-topology.ts";

/**
 * Real mirror lag on demand. The kernel here has no netem (nor prio) qdisc, so delaying or
 * dropping packets with `tc` cannot be done; and a clustered nats-server 2.9 refuses any change
 * of a stream's mirror config, so a mirror cannot be paused through its config either. What is
 * left, and works with any nats-server, is a relay this process runs in front of the hub leaf-node
 * port a region's edge server dials (see LinkFront in edge-topology.ts): the region's one link into
 * the hub passes through it, and a lag holds or delays what it forwards into the region. The servers,
 * the mirror and its consumer are untouched: the mirror falls behind because its deliveries
 * really arrive late (or not at all), and its own stall detection and retries run as they would
 * over a slow or cut link.
 *
 * Scope "mirror" (the default) holds only the frames whose subject is a mirror delivery subject
 * (`$JS.M.<token>`: messages, heartbeats and flow control of every mirror in the region), parsing
 * the leaf-node protocol for it, so the rest of the region's traffic (requests, replies, interest)
 * keeps flowing. Scope "all" holds every byte both ways, as a link that stops moving would.
 * A lag lives in memory: nothing to clean up beyond close(), which the topology's stop() calls.
 */

export type LagScope = "mirror" | "all";

export interface LagOptions {
	/** What is held back: the region's mirror deliveries (default) or all the traffic of its link into the hub. */
	scope?: LagScope;
	/** Forward what is held after this long; omitted, it is held until resume() (a stall). */
	delayMs?: number;
}

export interface Lag {
	/** Frames held right now (waiting for their delay, or for resume()). */
	held(): number;
	/** Lifts the lag and forwards everything held, in order. */
	resume(): Promise<void>;
}

/** Mirror consumers deliver on `$JS.M.<token>` (nats-server syncSubject("$JS.M"), 2.9 through 2.14). */
const MIRROR_DELIVERY = "$JS.M.";
const CRLF = Buffer.from("\r\n");

interface Rule {
	scope: LagScope;
	delayMs?: number;
}

interface Frame {
	bytes: Buffer;
	releaseAt: number;
}

/**
 * One direction of one relayed connection. Held frames keep their order among themselves and are
 * released when due; frames not held go straight through (a lag holds one kind of frame at a time,
 * and lifting or replacing it releases everything first).
 */
class Lane {
	private readonly out: Socket;
	private readonly queue: Frame[] = [];
	private timer: ReturnType<typeof setTimeout> | undefined;

	constructor(out: Socket) {
		this.out = out;
	}

	get held(): number {
		return this.queue.length;
	}

	send(bytes: Buffer, hold: Rule | undefined): void {
		if (!hold) {
			this.out.write(bytes);
			return;
		}
		this.queue.push({ bytes, releaseAt: Date.now() + (hold.delayMs ?? Infinity) });
		this.pump();
	}

	/** Forwards frames that are due; everything when `all`. */
	pump(all = false): void {
		if (all) for (const f of this.queue) f.releaseAt = 0;
		const now = Date.now();
		while (this.queue.length && this.queue[0]!.releaseAt <= now) this.out.write(this.queue.shift()!.bytes);
		clearTimeout(this.timer);
		this.timer = undefined;
		const next = this.queue[0]?.releaseAt;
		if (next !== undefined && Number.isFinite(next)) this.timer = setTimeout(() => this.pump(), Math.max(1, next - now));
	}

	stop(): void {
		clearTimeout(this.timer);
		this.queue.length = 0;
	}
}

/**
 * Splits the byte stream a server sends on a link between servers (leaf node, gateway, route) into protocol
 * frames, knowing the subject of each message. Anything it cannot parse turns it into a pass-through of raw chunks.
 */
class LinkParser {
	private buf: Buffer = Buffer.alloc(0);
	private raw = false;

	/** Frames complete so far, each with its subject when it is a message. */
	push(chunk: Buffer): { bytes: Buffer; subject?: string }[] {
		if (this.raw) return [{ bytes: chunk }];
		this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
		const frames: { bytes: Buffer; subject?: string }[] = [];
		for (;;) {
			const eol = this.buf.indexOf(CRLF);
			if (eol < 0) break;
			const line = this.buf.subarray(0, eol).toString("latin1");
			const args = line.split(" ").filter(Boolean);
			const op = args[0]?.toUpperCase() ?? "";
			let end = eol + 2;
			let subject: string | undefined;
			if (op === "RMSG" || op === "HMSG" || op === "LMSG" || op === "MSG") {
				const size = Number(args[args.length - 1]);
				if (!Number.isInteger(size) || size < 0) return this.giveUp(frames);
				end += size + 2;
				if (this.buf.length < end) break;
				subject = op === "RMSG" || op === "HMSG" ? args[2] : args[1];
			} else if (!/^(INFO|CONNECT|PING|PONG|RS\+|RS-|A\+|A-|LS\+|LS-|\+OK|-ERR)$/.test(op)) {
				return this.giveUp(frames);
			}
			frames.push({ bytes: this.buf.subarray(0, end), subject });
			this.buf = this.buf.subarray(end);
		}
		return frames;
	}

	private giveUp(frames: { bytes: Buffer; subject?: string }[]) {
		this.raw = true;
		frames.push({ bytes: this.buf });
		this.buf = Buffer.alloc(0);
		return frames;
	}
}

/** A TCP relay in front of the hub leaf-node port one region's edge server dials. */
class Relay {
	rule: Rule | undefined;
	private readonly server: NetServer;
	private readonly lanes = new Set<Lane>();
	private readonly sockets = new Set<Socket>();

	private constructor(server: NetServer) {
		this.server = server;
	}

	static async open(targetPort: number): Promise<{ relay: Relay; port: number }> {
		const server = createServer();
		const relay = new Relay(server);
		server.on("connection", down => relay.accept(down, targetPort));
		await new Promise<void>((resolve, reject) => {
			server.once("error", reject);
			server.listen(0, "127.0.0.1", () => resolve());
		});
		const address = server.address();
		if (address === null || typeof address === "string") throw new Error("relay has no TCP port");
		return { relay, port: address.port };
	}

	held(): number {
		let n = 0;
		for (const lane of this.lanes) n += lane.held;
		return n;
	}

	release(): void {
		for (const lane of this.lanes) lane.pump(true);
	}

	async close(): Promise<void> {
		for (const lane of this.lanes) lane.stop();
		for (const socket of this.sockets) socket.destroy();
		await new Promise<void>(resolve => this.server.close(() => resolve()));
	}

	private accept(down: Socket, targetPort: number): void {
		// `down` is the region's edge server, `up` the hub server it dials: what crosses into the region comes up → down.
		const up = connect(targetPort, "127.0.0.1");
		const fromRegion = new Lane(up);
		const intoRegion = new Lane(down);
		const parser = new LinkParser();
		const lanes = [fromRegion, intoRegion];
		for (const lane of lanes) this.lanes.add(lane);
		this.sockets.add(down).add(up);
		down.setNoDelay(true);
		up.setNoDelay(true);
		up.on("data", chunk => {
			for (const frame of parser.push(chunk)) intoRegion.send(frame.bytes, this.holds(frame.subject));
		});
		down.on("data", chunk => fromRegion.send(chunk, this.rule?.scope === "all" ? this.rule : undefined));
		const end = () => {
			for (const lane of lanes) {
				lane.stop();
				this.lanes.delete(lane);
			}
			down.destroy();
			up.destroy();
			this.sockets.delete(down);
			this.sockets.delete(up);
		};
		for (const socket of [down, up]) {
			socket.on("error", end);
			socket.on("close", end);
		}
	}

	private holds(subject: string | undefined): Rule | undefined {
		const rule = this.rule;
		if (!rule) return undefined;
		if (rule.scope === "all") return rule;
		return subject?.startsWith(MIRROR_DELIVERY) ? rule : undefined;
	}
}

/**
 * Relays on the links of `regions` into the hub, to pass as `linkFront` to startEdgeTopology;
 * lagLink / stallMirror then act on them.
 */
export class LinkRelays implements LinkFront {
	readonly regions: readonly string[];
	private readonly relays = new Map<string, Relay>();

	constructor(regions: readonly string[]) {
		this.regions = [...regions];
	}

	async open(regionId: string, leafPort: number): Promise<number> {
		await this.relays.get(regionId)?.close();
		const { relay, port } = await Relay.open(leafPort);
		this.relays.set(regionId, relay);
		return port;
	}

	async close(): Promise<void> {
		const relays = [...this.relays.values()];
		this.relays.clear();
		await Promise.all(relays.map(r => r.close()));
	}

	relay(regionId: string): Relay {
		const relay = this.relays.get(regionId);
		if (!relay) throw new Error(`no link relay for "${regionId}" (relayed: ${this.regions.join(", ") || "none"}); pass linkRelays([...]) as linkFront`);
		return relay;
	}
}

export function linkRelays(regions: readonly string[]): LinkRelays {
	return new LinkRelays(regions);
}

/**
 * Holds what crosses into `regionId` (its mirror deliveries by default, or everything): for
 * `delayMs` each, or until resume(). One lag per region at a time; a new one replaces the old.
 */
export function lagLink(relays: LinkRelays, regionId: string, opts: LagOptions = {}): Lag {
	const relay = relays.relay(regionId);
	if (opts.delayMs !== undefined && !(opts.delayMs >= 0)) throw new RangeError(`delayMs must be >= 0, got ${opts.delayMs}`);
	const rule: Rule = { scope: opts.scope ?? "mirror", delayMs: opts.delayMs };
	relay.release();
	relay.rule = rule;
	return {
		held: () => relay.held(),
		async resume() {
			if (relay.rule === rule) relay.rule = undefined;
			relay.release();
		}
	};
}

/** Stops `regionId`'s mirrors from receiving anything from their origins until resume(); the rest of its traffic flows. */
export function stallMirror(relays: LinkRelays, regionId: string): Lag {
	return lagLink(relays, regionId, { scope: "mirror" });
}
