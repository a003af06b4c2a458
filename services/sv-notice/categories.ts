/**
 * What a notice is about, and where it may go. The inbox always receives it (muted: written as
 * read and not pushed, unless it is a security notice); e-mail and webhook only when the user has
 * not opted out.
 */
export const CATEGORIES = ["security", "wallet", "account", "announcement"] as const;
export type Category = (typeof CATEGORIES)[number];

export const CHANNELS = ["inbox", "email", "webhook"] as const;
export type DeliveryChannel = (typeof CHANNELS)[number];

/** Channels beyond the inbox, each its own durable channel so one provider's outage holds back no other. */
export const EXTERNAL_CHANNELS = ["email", "webhook"] as const;
export type ExternalChannel = (typeof EXTERNAL_CHANNELS)[number];

export const LOCALES = ["en", "zh", "de"] as const;
export type Locale = (typeof LOCALES)[number];
export const DEFAULT_LOCALE: Locale = "en";
