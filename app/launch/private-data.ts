import { chmodSync, mkdirSync, readdirSync } from "node:fs";
import { join } from "node:path";

/**
 * The embedded data folder holds the blind-index and PII keys and every region's database, so
 * only its owner may read it: folder 0700, files 0600. The process umask makes whatever is
 * created from here on private (SQLite's -wal and -shm files too, which no open call names);
 * files left by an older start, made 0644, are tightened.
 */
export function keepDataPrivate(dir: string): void {
	process.umask(0o077);
	mkdirSync(dir, { recursive: true, mode: 0o700 });
	chmodSync(dir, 0o700);
	for (const entry of readdirSync(dir, { withFileTypes: true })) if (entry.isFile()) chmodSync(join(dir, entry.name), 0o600);
}
