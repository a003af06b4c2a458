import type { ServiceSchema } from "moleculer";
import apiApp from "./api-app/api-app.service.ts";
import apiCms from "./api-cms/api-cms.service.ts";
import apiWww from "./api-www/api-www.service.ts";
import apiWx from "./api-wx/api-wx.service.ts";
import authJwt from "./auth-jwt/auth-jwt.service.ts";
import authRbac from "./auth-rbac/auth-rbac.service.ts";
import svConfig from "./sv-config/sv-config.service.ts";
import svLog from "./sv-log/sv-log.service.ts";
import svMoney from "./sv-money/sv-money.service.ts";
import svNotice from "./sv-notice/sv-notice.service.ts";
import svOss from "./sv-oss/sv-oss.service.ts";
import svRegion from "./sv-region/sv-region.service.ts";
import svUser from "./sv-user/sv-user.service.ts";

/** A service schema whatever its settings, methods and instance fields are typed as. */
export type AnyServiceSchema = ServiceSchema<any, any, any, any>;

/** Every service a region node can run, by name; launchers pick a group of them. */
export const SERVICES: Record<string, AnyServiceSchema> = {
	"api-app": apiApp,
	"api-cms": apiCms,
	"api-www": apiWww,
	"api-wx": apiWx,
	"auth-rbac": authRbac,
	"auth-jwt": authJwt,
	"sv-config": svConfig,
	"sv-log": svLog,
	"sv-money": svMoney,
	"sv-notice": svNotice,
	"sv-oss": svOss,
	"sv-region": svRegion,
	"sv-user": svUser
};
