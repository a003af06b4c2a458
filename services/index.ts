import type { ServiceSchema } from "moleculer";
import svConfig from "./sv-config/sv-config.service.ts";
import svRegion from "./sv-region/sv-region.service.ts";
import svUser from "./sv-user/sv-user.service.ts";

/** A service schema whatever its settings, methods and instance fields are typed as. */
export type AnyServiceSchema = ServiceSchema<any, any, any, any>;

/** Every service a region node can run, by name; launchers pick a group of them. */
export const SERVICES: Record<string, AnyServiceSchema> = {
	"sv-config": svConfig,
	"sv-region": svRegion,
	"sv-user": svUser
};
