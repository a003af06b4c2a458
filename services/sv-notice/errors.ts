import { Errors } from "moleculer";

/** What sv-notice answers besides its parameter checks. Types are the stable codes clients see. */

export class TemplateNotFoundError extends Errors.MoleculerClientError {
	constructor(category: string, template: string) {
		super(`no template ${template} in category ${category}`, 422, "TEMPLATE_NOT_FOUND", { category, template });
	}
}

/** The template asks for data the send did not carry: refused at send time, never a broken message. */
export class TemplateDataMissingError extends Errors.MoleculerClientError {
	constructor(template: string, field: string) {
		super(`template ${template} needs "${field}"`, 422, "TEMPLATE_DATA_MISSING", { template, field });
	}
}

/** The caller's own notice of this id (another user's is not found either). */
export class NoticeNotFoundError extends Errors.MoleculerClientError {
	constructor(id: string) {
		super(`no notice ${id}`, 404, "NOTICE_NOT_FOUND", { id });
	}
}

/** Security notices always reach the inbox. */
export class SecurityNoticesRequiredError extends Errors.MoleculerClientError {
	constructor() {
		super("security notices cannot be turned off in the inbox", 422, "SECURITY_NOTICES_REQUIRED");
	}
}

/** No announcement of this id in any region that answered. */
export class AnnouncementNotFoundError extends Errors.MoleculerClientError {
	constructor(id: string) {
		super(`no announcement ${id}`, 404, "ANNOUNCEMENT_NOT_FOUND", { id });
	}
}
