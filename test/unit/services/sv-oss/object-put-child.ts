import { Readable } from "node:stream";
import { openObjectStore } from "../../../../services/sv-oss/nats-store.ts";

/*
 * A child process for the Object Store's crash test (test/integration/services/sv-oss-object-store.spec.ts):
 * `node object-put-child.ts <nats-url> <bucket> <key>` puts a body that never ends, 64 kB every 5 ms,
 * under the key; the test kills it once chunks are in the stream.
 */

const [servers, bucket, key] = process.argv.slice(2) as [string, string, string];
const store = await openObjectStore({ servers, bucket });
const chunk = Buffer.alloc(64 * 1024, 97);
const endless = new Readable({
	read() {
		setTimeout(() => this.push(chunk), 5);
	}
});
await store.put(key, endless);
