import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import { dirname, join } from "node:path";
import protobuf from "protobufjs";

/**
 * The OTLP protobuf definitions as the OpenTelemetry project published them (opentelemetry-proto,
 * shipped in the `build/protos` folder of its npm exporter package, installed here as
 * `otlp-protos`): the receiver decodes exports with them, not with the SDK that encoded them.
 */
const PROTOS = join(dirname(createRequire(import.meta.url).resolve("otlp-protos/package.json")), "build", "protos");

function loadRequestType(): protobuf.Type {
	const root = new protobuf.Root();
	root.resolvePath = (_origin, target) => join(PROTOS, target);
	root.loadSync("opentelemetry/proto/collector/trace/v1/trace_service.proto", { keepCase: false });
	return root.lookupType("opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest");
}

export type AttributeValue = string | number | boolean | AttributeValue[] | null;

export interface ReceivedSpan {
	traceId: string;
	spanId: string;
	/** Empty for a root span. */
	parentSpanId: string;
	name: string;
	kind: string;
	startMs: number;
	endMs: number;
	attributes: Record<string, AttributeValue>;
	status: { code: string; message: string };
	/** The attributes of the resource the span was exported under. */
	resource: Record<string, AttributeValue>;
	scope: string;
}

export interface OtlpReceiver {
	/** The traces endpoint, for EDGEHOME_OTLP_URL. */
	url: string;
	spans: ReceivedSpan[];
	/** Content types of the export requests received. */
	contentTypes: string[];
	/** The spans of one trace. */
	trace(traceId: string): ReceivedSpan[];
	stop(): Promise<void>;
}

interface AnyValueMessage {
	stringValue?: string;
	boolValue?: boolean;
	intValue?: number;
	doubleValue?: number;
	arrayValue?: { values?: AnyValueMessage[] };
}

function anyValue(v: AnyValueMessage | undefined): AttributeValue {
	if (!v) return null;
	if (v.stringValue !== undefined) return v.stringValue;
	if (v.boolValue !== undefined) return v.boolValue;
	if (v.intValue !== undefined) return Number(v.intValue);
	if (v.doubleValue !== undefined) return v.doubleValue;
	if (v.arrayValue) return (v.arrayValue.values ?? []).map(anyValue);
	return null;
}

function attributesOf(list: { key: string; value?: AnyValueMessage }[] | undefined): Record<string, AttributeValue> {
	return Object.fromEntries((list ?? []).map(kv => [kv.key, anyValue(kv.value)]));
}

/** Ids come as base64 (protobuf `bytes`); traces are read as hex, as W3C writes them. */
const hex = (b64: string | undefined) => (b64 ? Buffer.from(b64, "base64").toString("hex") : "");
const ms = (nanos: string | undefined) => Number(BigInt(nanos ?? "0") / 1_000_000n);

interface SpanMessage {
	traceId?: string;
	spanId?: string;
	parentSpanId?: string;
	name?: string;
	kind?: string;
	startTimeUnixNano?: string;
	endTimeUnixNano?: string;
	attributes?: { key: string; value?: AnyValueMessage }[];
	status?: { code?: string; message?: string };
}

interface ExportMessage {
	resourceSpans?: {
		resource?: { attributes?: { key: string; value?: AnyValueMessage }[] };
		instrumentationLibrarySpans?: { instrumentationLibrary?: { name?: string }; spans?: SpanMessage[] }[];
	}[];
}

/** The spans of one ExportTraceServiceRequest, each with its resource. */
export function decodeExport(body: Buffer, type: protobuf.Type = loadRequestType()): ReceivedSpan[] {
	const message = type.toObject(type.decode(body), { longs: String, enums: String, bytes: String }) as ExportMessage;
	return (message.resourceSpans ?? []).flatMap(rs => {
		const resource = attributesOf(rs.resource?.attributes);
		return (rs.instrumentationLibrarySpans ?? []).flatMap(ils =>
			(ils.spans ?? []).map(s => ({
				traceId: hex(s.traceId),
				spanId: hex(s.spanId),
				parentSpanId: hex(s.parentSpanId),
				name: s.name ?? "",
				kind: s.kind ?? "SPAN_KIND_UNSPECIFIED",
				startMs: ms(s.startTimeUnixNano),
				endMs: ms(s.endTimeUnixNano),
				attributes: attributesOf(s.attributes),
				status: { code: s.status?.code ?? "STATUS_CODE_UNSET", message: s.status?.message ?? "" },
				resource,
				scope: ils.instrumentationLibrary?.name ?? ""
			}))
		);
	});
}

/** An OTLP/HTTP collector on loopback that keeps every span it is sent (protobuf only; anything else gets 415). */
export async function startOtlpReceiver(): Promise<OtlpReceiver> {
	const type = loadRequestType();
	const spans: ReceivedSpan[] = [];
	const contentTypes: string[] = [];
	const server = createServer((req: IncomingMessage, res: ServerResponse) => {
		const chunks: Buffer[] = [];
		req.on("data", (c: Buffer) => chunks.push(c));
		req.on("end", () => {
			const contentType = req.headers["content-type"] ?? "";
			contentTypes.push(contentType);
			if (req.method !== "POST" || req.url !== "/v1/traces") {
				res.writeHead(404).end();
				return;
			}
			if (contentType !== "application/x-protobuf") {
				res.writeHead(415).end();
				return;
			}
			try {
				spans.push(...decodeExport(Buffer.concat(chunks), type));
				res.writeHead(200, { "content-type": "application/x-protobuf" }).end();
			} catch (err) {
				res.writeHead(400, { "content-type": "text/plain" }).end((err as Error).message);
			}
		});
	});
	await new Promise<void>(resolve => server.listen(0, "127.0.0.1", resolve));
	const { port } = server.address() as AddressInfo;
	return {
		url: `http://127.0.0.1:${port}/v1/traces`,
		spans,
		contentTypes,
		trace: traceId => spans.filter(s => s.traceId === traceId),
		stop: () =>
			new Promise<void>(resolve => {
				server.closeAllConnections();
				server.close(() => resolve());
			})
	};
}
