import { execFile, spawn } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type { Socket } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";

/**
 * Regions as Linux network namespaces, so a test can cut a region off from the others while
 * every process in it keeps running.
 *
 * - Each region is a namespace with `lo` up and two interfaces:
 *   - `wan`: 10.202.0.<n>/24, a veth whose other end is a port of a bridge that joins every
 *     region. The bridge sits in a hub namespace of its own, so the host's firewall and
 *     br_netfilter never see inter-region traffic, and nothing routes it through the host.
 *   - `mgmt`: 10.203.<slot>.<4i+2>/30, a veth to the root namespace (10.203.<slot>.<4i+1>), so the
 *     test process and nodes running in the root namespace reach that region's servers only.
 * - cut(region) takes the region's bridge port down: the region's `wan` loses its carrier and
 *   every packet to or from another region is dropped silently, as on a cut cable.
 * - `ip netns delete` kills nothing: processes keep the namespace alive. destroy() therefore
 *   SIGKILLs every process in the namespaces first. A watchdog does the same when this process
 *   dies without calling destroy(), and each new network sweeps what crashed runs left behind.
 */
export interface RegionNetwork {
	readonly regionIds: readonly string[];
	/** The region's namespace name, as `ip netns list` shows it. */
	namespaceOf(regionId: string): string;
	/** The region's address on the inter-region network: what servers of other regions dial. */
	wanAddress(regionId: string): string;
	/** The region's address as seen from the root namespace: what this process and root-namespace nodes dial. */
	mgmtAddress(regionId: string): string;
	/** Prepended to a command line (`spawn(p[0], [...p.slice(1), cmd, ...args])`), runs it in the region's namespace. */
	spawnPrefix(regionId: string): string[];
	/** Takes the region's inter-region link down: it reaches no other region, its processes and mgmt link stay up. */
	cut(regionId: string): Promise<void>;
	/** Brings the region's inter-region link back up. */
	heal(regionId: string): Promise<void>;
	/** Drops every packet between two regions (nftables inside both namespaces); their links to other regions stay up. */
	cutBetween(a: string, b: string): Promise<void>;
	/** Undoes cutBetween(a, b). */
	healBetween(a: string, b: string): Promise<void>;
	/** SIGKILLs every process in the namespaces, then removes the namespaces and interfaces; safe to call more than once. */
	destroy(): Promise<void>;
}

/** Thrown when this machine cannot create network namespaces (not root, no CAP_SYS_ADMIN, or no iproute2). */
export class NetnsUnavailableError extends Error {
	override name = "NetnsUnavailableError";
}

const MAX_REGIONS = 64; // one /30 per region in the run's mgmt /24
const WAN_NET = "10.202.0";
const MGMT_NET = "10.203"; // the run takes one free 10.203.<slot>.0/24
const SLOT_DIR = "/run/edgehome-netns"; // one file per claimed slot, holding the run's tag
const REGION_ID = /^[a-z0-9][a-z0-9-]{0,31}$/i;
/** Every name this harness makes in the root namespace starts with `eh<pid>_<run>`; the pid tells the sweeper whether its owner still lives. */
const OWNED_NAME = /^eh(\d+)_[0-9a-z]+(?:-|m\d+$|$)/;
const IFNAMSIZ = 15;

const run = promisify(execFile);
let networksMade = 0;

/**
 * Kills the processes of the namespaces in $NAMESPACES, deletes the links in $LINKS and the
 * namespaces, and frees $SLOT_FILE. With $WAIT_FOR_EOF it first waits for its stdin to close,
 * which happens when destroy() closes it or when the process holding the pipe dies.
 */
const CLEANUP = `
trap '' HUP INT TERM
if [ -n "$WAIT_FOR_EOF" ]; then while read -r _; do :; done; fi
for ns in $NAMESPACES; do
	pids=$(ip netns pids "$ns" 2>/dev/null)
	[ -n "$pids" ] && kill -KILL $pids 2>/dev/null
done
tries=0
while [ $tries -lt 50 ]; do
	left=
	for ns in $NAMESPACES; do left="$left$(ip netns pids "$ns" 2>/dev/null)"; done
	[ -z "$left" ] && break
	sleep 0.1
	tries=$((tries + 1))
done
for link in $LINKS; do ip link delete "$link" 2>/dev/null; done
for ns in $NAMESPACES; do ip netns delete "$ns" 2>/dev/null; done
[ -n "$SLOT_FILE" ] && rm -f "$SLOT_FILE"
exit 0
`;

export async function createRegionNetwork(regionIds: string[]): Promise<RegionNetwork> {
	if (regionIds.length < 2 || regionIds.length > MAX_REGIONS || new Set(regionIds).size !== regionIds.length)
		throw new Error(`createRegionNetwork needs 2 to ${MAX_REGIONS} distinct region ids, got [${regionIds.join(", ")}]`);
	const invalid = regionIds.filter(id => !REGION_ID.test(id));
	if (invalid.length) throw new Error(`region ids must match ${REGION_ID} to name a namespace, got ${invalid.join(", ")}`);

	await sweepCrashedRuns();
	const tag = `${process.pid}_${(networksMade++).toString(36)}`;
	const hub = `eh${tag}`;
	const namespaces = new Map(regionIds.map(id => [id, `eh${tag}-${id}`]));
	const mgmtLinks = regionIds.map((_, i) => `eh${tag}m${i}`);
	const tooLong = mgmtLinks.find(name => name.length > IFNAMSIZ);
	if (tooLong) throw new Error(`interface name ${tooLong} is over ${IFNAMSIZ} characters`);
	const slot = await claimSlot(tag);
	const mgmtNet = `${MGMT_NET}.${slot}`;

	const watchdog = spawn("sh", ["-c", CLEANUP], {
		stdio: ["pipe", "ignore", "ignore"],
		// Its own process group: a Ctrl-C to the test runner must not stop it before it cleans up.
		detached: true,
		env: {
			...process.env,
			NAMESPACES: [...namespaces.values(), hub].join(" "),
			LINKS: mgmtLinks.join(" "),
			SLOT_FILE: slotFile(slot),
			WAIT_FOR_EOF: "1"
		}
	});
	watchdog.unref();
	(watchdog.stdin as Socket).unref();
	const watchdogExit = new Promise<void>(resolve => {
		if (watchdog.exitCode !== null || watchdog.signalCode !== null) resolve();
		else watchdog.once("exit", () => resolve()).once("error", () => resolve());
	});

	let destroying: Promise<void> | undefined;
	const destroy = (): Promise<void> => {
		destroying ??= (async () => {
			watchdog.stdin?.end();
			await watchdogExit;
			const left = await leftovers([...namespaces.values(), hub], mgmtLinks);
			if (left.length) throw new Error(`region network ${hub}: still present after destroy: ${left.join(", ")}`);
		})();
		return destroying;
	};

	const nameOf = (regionId: string): string => {
		const ns = namespaces.get(regionId);
		if (!ns) throw new Error(`no region "${regionId}" in this network (${regionIds.join(", ")})`);
		return ns;
	};
	const indexOf = (regionId: string): number => {
		nameOf(regionId);
		return regionIds.indexOf(regionId);
	};
	const wanAddress = (regionId: string) => `${WAN_NET}.${indexOf(regionId) + 1}`;
	const setPeerBlocked = async (a: string, b: string, blocked: boolean) => {
		if (a === b) throw new Error(`cutBetween needs two different regions, got "${a}" twice`);
		for (const [self, peer] of [
			[a, b],
			[b, a]
		] as const) {
			const ns = nameOf(self);
			await ensureCutTable(ns);
			await ip(["netns", "exec", ns, "nft", blocked ? "add" : "delete", "element", "inet", CUT_TABLE, "peers", `{ ${wanAddress(peer)} }`]).catch(err => {
				// Deleting an element that is not there is the no-op healBetween promises.
				if (blocked || !/No such file or directory/.test(String(err.message))) throw err;
			});
		}
	};

	try {
		await ip(["netns", "add", hub]).catch(err => {
			throw new NetnsUnavailableError(`network namespaces are not available here: \`ip netns add\` failed (${err.message}); they need root and iproute2`);
		});
		await ip(["-n", hub, "link", "add", "name", "wan", "type", "bridge", "forward_delay", "0"]);
		await ip(["-n", hub, "link", "set", "wan", "up"]);
		for (const [i, regionId] of regionIds.entries()) {
			const ns = nameOf(regionId);
			await ip(["netns", "add", ns]);
			await ip(["-n", ns, "link", "set", "lo", "up"]);
			await ip(["-n", hub, "link", "add", `r${i}`, "type", "veth", "peer", "name", "wan", "netns", ns]);
			await ip(["-n", hub, "link", "set", `r${i}`, "master", "wan", "up"]);
			await ip(["-n", ns, "addr", "add", `${wanAddress(regionId)}/24`, "dev", "wan"]);
			await ip(["-n", ns, "link", "set", "wan", "up"]);
			await ip(["link", "add", mgmtLinks[i]!, "type", "veth", "peer", "name", "mgmt", "netns", ns]);
			await ip(["addr", "add", `${mgmtNet}.${4 * i + 1}/30`, "dev", mgmtLinks[i]!]);
			await ip(["link", "set", mgmtLinks[i]!, "up"]);
			await ip(["-n", ns, "addr", "add", `${mgmtNet}.${4 * i + 2}/30`, "dev", "mgmt"]);
			await ip(["-n", ns, "link", "set", "mgmt", "up"]);
		}
	} catch (err) {
		await destroy().catch(() => undefined);
		throw err;
	}

	return {
		regionIds: [...regionIds],
		namespaceOf: nameOf,
		wanAddress,
		mgmtAddress: regionId => `${mgmtNet}.${4 * indexOf(regionId) + 2}`,
		spawnPrefix: regionId => ["ip", "netns", "exec", nameOf(regionId)],
		cut: async regionId => {
			await ip(["-n", hub, "link", "set", `r${indexOf(regionId)}`, "down"]);
		},
		heal: async regionId => {
			await ip(["-n", hub, "link", "set", `r${indexOf(regionId)}`, "up"]);
		},
		cutBetween: (a, b) => setPeerBlocked(a, b, true),
		healBetween: (a, b) => setPeerBlocked(a, b, false),
		destroy
	};
}

let availability: Promise<boolean> | undefined;

/** Whether this machine can create network namespaces; prints why not, for specs that skip without them. */
export function netnsAvailable(): Promise<boolean> {
	availability ??= (async () => {
		const probe = `eh${process.pid}_probe`;
		try {
			await ip(["netns", "add", probe]);
			await ip(["netns", "delete", probe]);
			return true;
		} catch (err) {
			console.warn(`skipping network namespace tests: cannot create one (${(err as Error).message}); they need root and iproute2`);
			return false;
		}
	})();
	return availability;
}

const CUT_TABLE = "edgehome_cut";

/** Creates, once per namespace, a table dropping all traffic to and from the addresses in its `peers` set. */
async function ensureCutTable(ns: string): Promise<void> {
	const { stdout } = await ip(["netns", "exec", ns, "nft", "list", "tables"]).catch(err => {
		throw new Error(`cutBetween needs nftables (the nft command) inside the namespace: ${err.message}`);
	});
	if (stdout.includes(CUT_TABLE)) return;
	const table = [
		`table inet ${CUT_TABLE} {`,
		"set peers { type ipv4_addr; }",
		"chain input { type filter hook input priority 0; policy accept; ip saddr @peers drop; }",
		"chain output { type filter hook output priority 0; policy accept; ip daddr @peers drop; }",
		"}"
	].join("\n");
	await ip(["netns", "exec", ns, "nft", table]);
}

/** Runs `ip` (or, through `ip netns exec`, a command inside a namespace); a failure says which command and why. */
async function ip(args: string[]): Promise<{ stdout: string }> {
	try {
		return await run("ip", args, { timeout: 10_000 });
	} catch (err) {
		const e = err as Error & { stderr?: string };
		throw new Error(`ip ${args.join(" ")}: ${(e.stderr || e.message).trim()}`);
	}
}

function pidAlive(pid: number): boolean {
	try {
		process.kill(pid, 0);
		return true;
	} catch (err) {
		return (err as NodeJS.ErrnoException).code === "EPERM";
	}
}

function slotFile(slot: number): string {
	return join(SLOT_DIR, String(slot));
}

/** Removes the namespaces, root-namespace links and slot files of runs whose process is gone. */
async function sweepCrashedRuns(): Promise<void> {
	const stale = (name: string) => {
		const owner = OWNED_NAME.exec(name)?.[1];
		return owner !== undefined && Number(owner) !== process.pid && !pidAlive(Number(owner));
	};
	const { namespaces, links } = await ownedNames();
	const slots = listSlots().filter(({ tag }) => stale(`eh${tag}`));
	const staleNamespaces = namespaces.filter(stale);
	const staleLinks = links.filter(stale);
	if (!staleNamespaces.length && !staleLinks.length && !slots.length) return;
	await run("sh", ["-c", CLEANUP], {
		timeout: 30_000,
		env: { ...process.env, NAMESPACES: staleNamespaces.join(" "), LINKS: staleLinks.join(" ") }
	});
	for (const { slot } of slots) rmSync(slotFile(slot), { force: true });
}

async function ownedNames(): Promise<{ namespaces: string[]; links: string[] }> {
	const [netns, link] = await Promise.all([ip(["netns", "list"]), ip(["-o", "link", "show"])]);
	// `ip netns list` prints "name" or "name (id: N)"; `ip -o link` prints "N: name@peer: <...>".
	const namespaces = netns.stdout
		.split("\n")
		.map(line => line.split(" ")[0]!)
		.filter(name => OWNED_NAME.test(name));
	const links = link.stdout
		.split("\n")
		.map(line => line.split(":")[1]?.trim().split("@")[0] ?? "")
		.filter(name => OWNED_NAME.test(name));
	return { namespaces, links };
}

/** The given names that still exist. */
async function leftovers(namespaces: string[], links: string[]): Promise<string[]> {
	const present = await ownedNames();
	return [...namespaces.filter(n => present.namespaces.includes(n)), ...links.filter(l => present.links.includes(l))];
}

function listSlots(): { slot: number; tag: string }[] {
	mkdirSync(SLOT_DIR, { recursive: true });
	return readdirSync(SLOT_DIR).flatMap(name => {
		try {
			return [{ slot: Number(name), tag: readFileSync(slotFile(Number(name)), "utf8") }];
		} catch {
			return [];
		}
	});
}

/**
 * Claims a mgmt /24 (10.203.<slot>.0/24) for this run: a slot file created exclusively, so
 * concurrent runs never share one, in a range none of the host's addresses or routes touch.
 */
async function claimSlot(tag: string): Promise<number> {
	const { stdout } = await ip(["-4", "-o", "route", "show", "table", "all"]);
	const { stdout: addrs } = await ip(["-4", "-o", "addr", "show"]);
	const used = new Set<number>();
	for (const match of `${stdout}\n${addrs}`.matchAll(/\b10\.203\.(\d+)\.\d+(?:\/(\d+))?/g)) {
		if (Number(match[2] ?? 32) < 24) throw new Error(`the host routes ${match[0]}, which overlaps the ${MGMT_NET}.0.0/16 the region networks use`);
		used.add(Number(match[1]));
	}
	mkdirSync(SLOT_DIR, { recursive: true });
	const first = process.pid % 256;
	for (let k = 0; k < 256; k++) {
		const slot = (first + k) % 256;
		if (used.has(slot)) continue;
		try {
			writeFileSync(slotFile(slot), tag, { flag: "wx" });
			return slot;
		} catch (err) {
			if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
		}
	}
	throw new Error(`no free ${MGMT_NET}.<slot>.0/24 for a region network: all 256 are in use (see ${SLOT_DIR})`);
}
