import type { ReplOptions, ServiceBroker } from "moleculer";
import { ADMIN_PASSWORD_ENV } from "../launch/first-admin.ts";
import { ADMIN_CREATE_USAGE, adminCreate } from "./admin.command.ts";
import { channelsSubcommands } from "./channels.command.ts";
import type { ReplContext } from "./context.ts";
import { describeError } from "./describe-error.ts";
import { logSubcommands } from "./log.command.ts";
import { noticeSubcommands } from "./notice.command.ts";
import type { Subcommand } from "./region.command.ts";
import { regionSubcommands } from "./region.command.ts";
import { walletSubcommands } from "./wallet.command.ts";

type ReplCustomCommand = NonNullable<ReplOptions["customCommands"]>[number];

/**
 * Every project command of `npm run repl`, registered here and nowhere else. Ops commands
 * are grouped under one verb per concern (`region …`, `wallet …`, `admin …`), each sub-command in its own entry.
 */
export function replCommands(ctx: ReplContext): ReplCustomCommand[] {
	return [
		grouped(ctx, "region", "Regions", regionSubcommands(ctx)),
		grouped(ctx, "channels", "Durable channels", channelsSubcommands(ctx)),
		grouped(ctx, "wallet", "Wallets", walletSubcommands(ctx)),
		grouped(ctx, "notice", "Notices", noticeSubcommands(ctx)),
		grouped(ctx, "log", "Audit log", logSubcommands(ctx)),
		{
			command: "admin <sub> [username]",
			description: `Administrators: ${ADMIN_CREATE_USAGE}`,
			options: [
				{ option: "--region <id>", description: "home region of the new administrator (default: this REPL's region)" },
				{ option: "--password-from-env", description: `take the password from ${ADMIN_PASSWORD_ENV} instead of generating one` }
			],
			async action(broker: ServiceBroker, args: any) {
				if (args.sub !== "create" || typeof args.username !== "string") return ctx.print(`usage: ${ADMIN_CREATE_USAGE}`);
				try {
					const { region, passwordFromEnv } = args.options ?? {};
					await adminCreate(ctx, broker, args.username, { region, passwordFromEnv: Boolean(passwordFromEnv) });
				} catch (err) {
					ctx.print(describeError(err));
				}
			}
		}
	];
}

/** One verb with sub-commands (`region which …`, `channels dlq …`): its usage lines are its description and its answer to a typo. */
function grouped(ctx: ReplContext, verb: string, title: string, subs: Record<string, Subcommand>): ReplCustomCommand {
	const usages = Object.values(subs)
		.map(s => s.usage)
		.join(" | ");
	return {
		command: `${verb} <sub> [arg1] [arg2]`,
		description: `${title}: ${usages}`,
		async action(broker: ServiceBroker, args: any) {
			const sub = subs[args.sub as string];
			if (!sub) return ctx.print(`unknown sub-command "${args.sub}"; try: ${usages}`);
			const rest = [args.arg1, args.arg2].filter((a): a is string => typeof a === "string");
			try {
				await sub.run(broker, rest);
			} catch (err) {
				ctx.print(describeError(err));
			}
		}
	};
}
