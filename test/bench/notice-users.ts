import { randomBytes } from "node:crypto";
import type { Connection } from "mysql2/promise";
import type { HomeEntry } from "../../regions/directory/entries.ts";
import { newUserId, userKey } from "../../regions/directory/entries.ts";
import type { NatsKvDirectoryStore } from "../../regions/directory/nats-kv-store.ts";
import { OWNERSHIP_TABLE } from "../../regions/ownership/records.ts";
import { http } from "../harness/gateways.ts";
import { inParallel } from "./money-load.ts";

/**
 * bench:notice's users: a few registered and logged in through the gateway (their live streams
 * need a token), and thousands written straight into the region's database and the directory as
 * registration leaves them (user row, ownership row, directory entry), for the announcement:
 * registering 20,000 users through scrypt would take the bench minutes.
 */

export interface SignedUp {
	id: string;
	token: string;
}

/** Tries of a login that the gateway could not serve yet (services still being discovered). */
const LOGIN_ATTEMPTS = 50;
const ROWS_PER_INSERT = 500;
const DIRECTORY_IN_FLIGHT = 64;

export async function signUp(www: string, username: string, country: string): Promise<SignedUp> {
	const password = `bench notice ${randomBytes(6).toString("hex")}`;
	const res = await http(www, "POST", "/api/v1/auth/register", { body: { username, password, country } });
	if (res.status !== 201) throw new Error(`register ${username}: ${res.status} ${res.text}`);
	for (let attempt = 1; ; attempt++) {
		const login = await http(www, "POST", "/api/v1/auth/login", { body: { login: username, password } });
		if (login.status === 200) return { id: res.body.id as string, token: login.body.accessToken as string };
		if (attempt >= LOGIN_ATTEMPTS) throw new Error(`login ${username}: ${login.status} ${login.text}`);
		await new Promise(r => setTimeout(r, 200));
	}
}

/** `n` more users homed where `like` is (a registered user of the region), as registration leaves them. */
export async function addUsers(db: Connection, store: NatsKvDirectoryStore, like: string, n: number): Promise<void> {
	const home = (await store.get<HomeEntry>(userKey(like)))?.value;
	if (!home) throw new Error(`no directory entry for ${like}`);
	const now = Date.now();
	for (let i = 0; i < n; i += ROWS_PER_INSERT) {
		const ids = Array.from({ length: Math.min(ROWS_PER_INSERT, n - i) }, () => newUserId());
		await db.query("insert into users (id, username, password_hash, created_at, updated_at) values ?", [
			ids.map(id => [id, `bn${id.slice(10)}`, "-", now, now])
		]);
		await db.query(`insert into ${OWNERSHIP_TABLE} (user_id, epoch, state, move_id, version, updated_at) values ?`, [
			ids.map(id => [id, home.epoch, "active", null, 1, now])
		]);
		await inParallel(ids.length, DIRECTORY_IN_FLIGHT, j => store.create(userKey(ids[j]!), home));
	}
}
