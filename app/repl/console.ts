import type { ServiceBroker } from "moleculer";
import type { ReplContext } from "./context.ts";
import { replCommands } from "./index.ts";

/**
 * moleculer-repl on `broker`, with the project's commands. `quit` runs `onQuit` when given (the
 * embedded launcher stops every region, not only this broker), then exits 0.
 */
export function openConsole(broker: ServiceBroker, ctx: ReplContext, onQuit?: () => Promise<void>): void {
	broker.options.replOptions = { delimiter: `${String(broker.metadata.region)} $`, customCommands: replCommands(ctx) };
	const server = broker.repl() as unknown as NodeJS.EventEmitter | undefined;
	if (!server || !onQuit) return;
	server.removeAllListeners("exit");
	server.on("exit", () => {
		onQuit().then(
			() => process.exit(0),
			err => {
				ctx.print(`stop failed: ${(err as Error).message}`);
				process.exit(1);
			}
		);
	});
}
