/** A region id, as region files and calls name it. */
export const REGION_ID = /^[a-z][a-z0-9-]{1,30}[a-z0-9]$/;

/** The client types that each have their own gateway in every region. */
export const CLIENT_TYPES = ["app", "www", "cms", "wx"] as const;
export type ClientType = (typeof CLIENT_TYPES)[number];

export interface RegionEndpoints {
	nats: string;
	mysql: string;
	redis: string;
	mongo: string;
}

export type RegionPorts = Record<ClientType | "metrics", number>;

/** One edge cluster: what `regions/definitions/<id>.json` declares. */
export interface RegionDefinition {
	id: string;
	name: string;
	/** ISO 3166-1 alpha-2 codes this region serves. */
	countries: string[];
	/** Countries whose users must stay homed in this region (data residency). */
	residency: string[];
	endpoints: RegionEndpoints;
	ports: RegionPorts;
}
