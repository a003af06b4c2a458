import { spawn } from "node:child_process";

/** `npm run repl` as a child process, read as an operator reads it: everything it printed since the last command. */
export interface ReplConsole {
	/** What it printed (stdout and stderr) since it started or since the last `typed`. */
	readonly output: string;
	/** Waits until the output matches `pattern`, failing with the whole output after `ms`. */
	until(pattern: RegExp, ms?: number): Promise<RegExpMatchArray>;
	/** Types `command` into a fresh output and waits until it matches `done`; resolves with the output. */
	typed(command: string, done: RegExp, ms?: number): Promise<string>;
	kill(): void;
}

/** Starts the console on `region` with `env` and waits for its prompt. */
export async function startReplConsole(region: string, env: NodeJS.ProcessEnv): Promise<ReplConsole> {
	const child = spawn(process.execPath, ["app/launch/repl.ts", "--region", region], { env, stdio: ["pipe", "pipe", "pipe"] });
	let output = "";
	child.stdout!.on("data", d => (output += d));
	child.stderr!.on("data", d => (output += d));
	const repl: ReplConsole = {
		get output() {
			return output;
		},
		async until(pattern, ms = 10_000) {
			const deadline = Date.now() + ms;
			for (;;) {
				const match = output.match(pattern);
				if (match) return match;
				if (Date.now() > deadline) throw new Error(`REPL never printed ${pattern}; it printed:\n${output}`);
				await new Promise(r => setTimeout(r, 50));
			}
		},
		async typed(command, done, ms) {
			output = "";
			child.stdin!.write(`${command}\n`);
			await repl.until(done, ms);
			return output;
		},
		kill() {
			child.kill("SIGKILL");
		}
	};
	try {
		await repl.until(new RegExp(`${region} \\$`));
	} catch (err) {
		child.kill("SIGKILL");
		throw err;
	}
	return repl;
}
