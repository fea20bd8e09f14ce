import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Span, type TextMapGetter, type TracerProvider } from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import type { CallListener, CallRecord } from "../call/record.js";
import type { Provider } from "../providers/provider.js";
import type { UpstreamTraceContext } from "./trace-context.js";

/** A call's spans: its server span and, once the provider was called, the client span of that request. */
export interface CallTracing extends UpstreamTraceContext {
  /** Ends the call's spans with its outcome. */
  readonly onCallEnd: CallListener;
}

const propagator = new W3CTraceContextPropagator();
const headerGetter: TextMapGetter<Headers> = {
  get: (headers, key) => headers.get(key) ?? undefined,
  keys: (headers) => [...headers.keys()],
};

interface Spans {
  readonly server: Span;
  client?: { readonly span: Span; readonly startedAt: number };
}

/**
 * OpenTelemetry spans through `@opentelemetry/api`, from the call record (so every door is
 * traced alike): one SERVER span per call, a child of the caller's `traceparent`, named after
 * the procedure (`smarter.prompt.v1.PassthroughService/Passthrough`) or the REST route
 * (`POST /api/v1/prompts/passthrough/{provider_name}/`); and a CLIENT span for the provider's
 * request, its child, whose context the request carries as `traceparent` (and the caller's
 * `tracestate`). Spans are started after the fact where they can be (the record knows when the
 * call began, and how long the provider took), so that a call costs nothing more until it
 * reaches the provider.
 */
export function createCallTracing(tracerProvider: TracerProvider): CallTracing {
  const tracer = tracerProvider.getTracer("passthrough");
  const spans = new WeakMap<CallRecord, Spans>();

  const spansOf = (call: CallRecord): Spans => {
    let found = spans.get(call);
    if (found === undefined) {
      const parent = propagator.extract(ROOT_CONTEXT, call.requestHeader, headerGetter);
      const server = tracer.startSpan(call.route ?? call.procedure.slice(1), { kind: SpanKind.SERVER, startTime: call.startedAt, attributes: serverAttributes(call) }, parent);
      found = { server };
      spans.set(call, found);
    }
    return found;
  };

  return {
    upstreamHeaders(call, provider) {
      const found = spansOf(call);
      // One clock for both spans: the call's start, and offsets measured from it.
      const startedAt = call.startedAt + (call.upstreamStartMs ?? 0);
      const span = tracer.startSpan(
        `POST ${provider.completionsPath}`,
        { kind: SpanKind.CLIENT, startTime: startedAt, attributes: clientAttributes(provider) },
        trace.setSpan(ROOT_CONTEXT, found.server),
      );
      found.client = { span, startedAt };
      const headers: Record<string, string> = {};
      propagator.inject(trace.setSpan(ROOT_CONTEXT, span), headers, { set: (carrier, key, value) => (carrier[key] = value) });
      return headers;
    },

    onCallEnd(call) {
      const { server, client } = spansOf(call);
      const outcome = call.outcome;
      if (client !== undefined) {
        const status = call.upstreamStatus;
        if (status !== undefined) client.span.setAttribute("http.response.status_code", status);
        if (status === undefined || status >= 400) client.span.setStatus({ code: SpanStatusCode.ERROR, message: status === undefined ? "no answer from the provider" : `HTTP ${status}` });
        const duration = call.upstreamDurationMs;
        client.span.end(duration === undefined ? undefined : client.startedAt + duration);
      }
      const attributes: Attributes = { "passthrough.journal_key": call.journalKey };
      if (call.providerName !== undefined) attributes["passthrough.provider"] = call.providerName;
      if (outcome !== undefined) {
        attributes["rpc.grpc.status_code"] = outcome.code;
        if (call.protocol === "rest") attributes["http.response.status_code"] = outcome.status;
        // A server span is an error when the gateway or the provider failed (5xx), not when the caller erred.
        if (outcome.status >= 500) server.setStatus({ code: SpanStatusCode.ERROR, message: outcome.message });
      }
      server.setAttributes(attributes);
      server.end(call.startedAt + (call.durationMs ?? 0));
    },
  };
}

function serverAttributes(call: CallRecord): Attributes {
  const attributes: Attributes = {
    "rpc.service": call.method.parent.typeName,
    "rpc.method": call.method.name,
    "passthrough.protocol": call.protocol,
    "passthrough.journal_key": call.journalKey,
  };
  if (call.protocol === "rest") {
    attributes["http.request.method"] = call.route?.split(" ")[0] ?? "POST";
    if (call.route !== undefined) attributes["http.route"] = call.route.slice(call.route.indexOf(" ") + 1);
  } else {
    attributes["rpc.system"] = call.protocol === "connect" ? "connect_rpc" : "grpc";
  }
  return attributes;
}

function clientAttributes(provider: Provider): Attributes {
  const origin = new URL(provider.origin);
  return {
    "http.request.method": "POST",
    "server.address": origin.hostname,
    "server.port": Number(origin.port || (origin.protocol === "https:" ? 443 : 80)),
    "url.full": `${provider.origin}${provider.completionsPath}`,
    "url.template": provider.completionsPath,
    "passthrough.provider": provider.name,
  };
}
