import { parseTraceParent, TraceState } from "@opentelemetry/core";
import type { CallRecord } from "../call/record.js";
import type { Provider } from "../providers/provider.js";

/** What a call's upstream request carries of its W3C trace context (`traceparent`, `tracestate`). */
export interface UpstreamTraceContext {
  /** The headers to add to the provider's request, decided just before it is sent. */
  upstreamHeaders(call: CallRecord, provider: Provider): Record<string, string> | undefined;
}

/**
 * Without tracing, the gateway takes no part in the trace and relays the caller's context
 * unchanged, as W3C Trace Context allows a vendor that does not trace ("it MAY mutate the value",
 * section 3.2): the caller's span stays the provider's parent. An invalid `traceparent` (or
 * several) is not relayed, and then neither is `tracestate`; a `tracestate` is relayed without
 * its invalid members, and not at all past 512 characters, as OpenTelemetry's parser does.
 */
export const relayTraceContext: UpstreamTraceContext = {
  upstreamHeaders(call): Record<string, string> | undefined {
    const traceparent = call.requestHeader.get("traceparent");
    if (traceparent === null || parseTraceParent(traceparent) === null) return undefined;
    const raw = call.requestHeader.get("tracestate");
    const tracestate = raw === null ? "" : new TraceState(raw).serialize();
    return tracestate === "" ? { traceparent } : { traceparent, tracestate };
  },
};
