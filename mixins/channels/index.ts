/** Durable channels: what app/ and services import. One concept per file in this folder. */
export type { ChannelDeclaration, ChannelDelivery } from "./declaration.ts";
export { ChannelError, type ChannelErrorType } from "./errors.ts";
export { type JetStreamChannelsOptions, openJetStreamChannels } from "./jetstream-store.ts";
export { MAX_PAYLOAD_BYTES } from "./names.ts";
export { openRegionChannels, type RegionChannelSettings } from "./open.ts";
export { CHANNELS_SERVICE } from "./ops.service.ts";
export { channelsOf, type SendOptions, type SentMessage } from "./runtime.ts";
export { openSqliteChannels } from "./sqlite-store.ts";
export type { ChannelStore, DeadLetter } from "./store.ts";
