import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { createRegistry, type DescMethod, type DescService } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,

  createServiceImplSpec,
  type ContextValues,
  type Interceptor,
  type MethodImplSpec,
  type ServiceImpl,
} from "@connectrpc/connect";
import type { CallDoor, DoorMatch } from "../call/entry.js";
import type { CallRecord } from "../call/record.js";
import { invokeUnaryImplementation } from "../connect-internals.js";
import { writeJsonError, type ErrorResponse, type WriteError } from "./error-response.js";
import { NodeHttpExchange } from "./exchange.js";
import { startNodeCall } from "../node-http/handler-context.js";
import { kHttpExchange, type HttpExchange } from "./http-exchange.js";
import { readHttpBindings } from "./http-rule.js";
import { readRequestBody, type NodeRequest } from "../node-http/request.js";
import { canRespond, endResponse, setResponseHeaders, type NodeResponse } from "../node-http/response.js";
import { parsePathTemplate, type PathTemplate } from "./path-template.js";
import { buildRequestMessage, compileRequestPlan, type RequestPlan } from "./request-message.js";
import { compileResponseSerializer, type ResponseSerializer } from "./response.js";
import { HttpStatusHint } from "./http-status.js";
import { createRouter, type Route } from "./router.js";

/**
 * A service and its implementation, as given to ConnectRouter.service(). `impl` is typed
 * loosely so that the implementation of any generated service fits in one array.
 */
export interface TranscodedService {
  service: DescService;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  impl: Partial<ServiceImpl<any>>;
}

export interface TranscoderOptions {
  /**
   * Services with their implementations. Every unary method with a google.api.http option
   * gets a route per binding; streaming methods get none (they are served by gRPC and
   * Connect; a REST handler streams with HttpExchange.stream instead).
   */
  services: TranscodedService[];
  /** Run around every call, as connect-node runs them for gRPC and Connect. Default: none. */
  interceptors?: Interceptor[];
  /** Largest request body in bytes; larger is RESOURCE_EXHAUSTED, REST status 413. Default 8 MiB. */
  maxBodyBytes?: number;
  /** Builds the error response. Default: status httpStatusOf(error), JSON body {"code":"not_found","message":"..."}. */
  writeError?: WriteError;
  /** Aborts the handler context signal of every call in flight. Default: none. */
  shutdownSignal?: AbortSignal;
  /** Upper bound for a call's duration in ms: the handler context's deadline. Default: none. */
  maxTimeoutMs?: number;
  /** Refuses a query parameter that binds no field with INVALID_ARGUMENT instead of ignoring it. Default false. */
  rejectUnknownQueryParameters?: boolean;
  /** Writes response fields at their implicit default (`0`, `""`, `[]`) too, as grpc-gateway does. Default false (proto3 JSON omits them). */
  emitDefaults?: boolean;
}

export interface Transcoder extends CallDoor {
  /**
   * Serves the request when its path matches a route and returns true; returns false
   * (touching nothing) when no route's path matches, so the server can fall through. Path
   * matches but method doesn't: 405 with an Allow header (returns true).
   */
  handle(req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse): boolean;
  /** As handle(), for the gateway's entry: the match is served once the entry has its record. */
  match(req: NodeRequest, res: NodeResponse): DoorMatch | undefined;
  readonly routes: ReadonlyArray<{ httpMethod: string; template: string; method: DescMethod }>;
}

/** The HandlerContext.protocolName of a call that arrived on a REST binding. */
const restProtocolName = "rest";

interface RouteTarget {
  readonly spec: MethodImplSpec;
  readonly plan: RequestPlan;
  readonly serialize: ResponseSerializer;
}

const defaultMaxBodyBytes = 8 * 1024 * 1024;
const emptyBody = new Uint8Array(0);

/** Builds the REST transcoder; throws when a service's HTTP rules are invalid. */
export function createTranscoder(options: TranscoderOptions): Transcoder {
  const opt = validateTranscoderOptions(options);
  const routes = compileRoutes(opt.services, opt.emitDefaults);
  const router = createRouter(routes);

  async function serve(route: Route<RouteTarget>, values: string[], req: NodeRequest, res: NodeResponse, path: string, query: string, record?: CallRecord, refusal?: ConnectError) {
    const { spec, plan, serialize } = route.target;
    const call = startNodeCall(req, res, {
      method: spec.method,
      protocolName: restProtocolName,
      requestMethod: route.httpMethod,
      timeoutMs: opt.maxTimeoutMs,
      shutdownSignal: opt.shutdownSignal,
      record,
    });
    const { context } = call;
    const contextValues = context.values;
    let exchange: NodeHttpExchange | undefined;
    try {
      if (refusal !== undefined) throw refusal;
      const body = plan.body.kind === "none" ? emptyBody : await readRequestBody(req, opt.maxBodyBytes);
      // The bytes as received, also when they then fail to decode.
      if (record !== undefined) record.request = { bytes: body };
      exchange = new NodeHttpExchange(route.httpMethod, path, body, res, context.responseHeader, context.signal, record);
      context.values.set(kHttpExchange, exchange);
      const input = buildRequestMessage(plan, values, query, body, opt.rejectUnknownQueryParameters);
      if (spec.kind !== "unary") throw new ConnectError("not a unary method", Code.Internal);
      const output = await invokeUnaryImplementation(spec, context, input, opt.interceptors);
      if (exchange.streaming !== undefined) {
        await exchange.streaming;
        return;
      }
      if (!canRespond(res)) return;
      setResponseHeaders(res, context.responseHeader);
      setResponseHeaders(res, context.responseTrailer);
      record?.answered({ code: 0, status: 200 });
      if (exchange.raw !== undefined) {
        endResponse(res, 200, exchange.raw.contentType, exchange.raw.body);
      } else {
        endResponse(res, 200, "application/json", serialize(output));
      }
    } catch (e) {
      const error = call.fail(e);
      if (exchange?.streaming !== undefined) {
        await exchange.streaming.catch(() => {});
        if (!res.writableEnded) res.end();
        return;
      }
      if (canRespond(res) && !call.callerGone()) {
        respondWithError(res, error, context.responseHeader, context.responseTrailer, contextValues, exchange, record);
      } else {
        record?.answered({ code: error.code, status: 499, message: error.rawMessage });
      }
    } finally {
      call.complete();
    }
  }

  /** Writes the error response, recording it first (the record ends as the response does). */
  function respondWithError(res: NodeResponse, error: ConnectError, header: Headers, trailer: Headers, contextValues?: ContextValues, exchange?: HttpExchange, record?: CallRecord): void {
    let response: ErrorResponse;
    try {
      response = opt.writeError(error, { responseHeader: header, contextValues, exchange });
    } catch {
      response = writeJsonError(error, { responseHeader: header, contextValues, exchange });
    }
    setResponseHeaders(res, header);
    setResponseHeaders(res, trailer);
    setResponseHeaders(res, error.metadata);
    res.setHeader("content-type", "application/json");
    for (const [name, value] of Object.entries(response.headers ?? {})) {
      res.setHeader(name, value);
    }
    record?.answered({ code: error.code, status: response.status, message: error.rawMessage });
    endResponse(res, response.status, undefined, response.body);
  }

  function match(req: NodeRequest, res: NodeResponse): DoorMatch | undefined {
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const path = q < 0 ? url : url.slice(0, q);
    const found = router.find(req.method ?? "", path);
    if (found === undefined) return undefined;
    if (found.route === undefined) {
      const { allow } = found;
      return {
        protocol: "rest",
        door: "rest",
        serve() {
          const message = `method ${req.method} is not allowed on ${path}`;
          const error = new ConnectError(message, Code.Unimplemented, undefined, undefined, new HttpStatusHint(message, 405));
          res.setHeader("allow", allow.join(", "));
          respondWithError(res, error, new Headers(), new Headers());
        },
      };
    }
    const { route, values } = found;
    return {
      protocol: "rest",
      door: "rest",
      method: route.target.spec.method,
      route: `${route.httpMethod} ${route.template.source}`,
      serve(record, refusal) {
        serve(route, values, req, res, path, q < 0 ? "" : url.slice(q + 1), record, refusal).catch(() => {
          // Only a failure to write the response gets here; nothing more can be told to the caller.
          if (canRespond(res)) endResponse(res, 500, "application/json", '{"code":"internal","message":"internal error"}');
          else if (!res.writableEnded) res.end();
        });
      },
    };
  }

  return {
    routes: routes.map((r) => ({ httpMethod: r.httpMethod, template: r.template.source, method: r.target.spec.method })),
    match,
    handle(req, res) {
      const found = match(req, res);
      found?.serve(undefined, undefined);
      return found !== undefined;
    },
  };
}

function validateTranscoderOptions(options: TranscoderOptions) {
  const maxBodyBytes = options.maxBodyBytes ?? defaultMaxBodyBytes;
  if (!Number.isSafeInteger(maxBodyBytes) || maxBodyBytes < 0) {
    throw new Error(`maxBodyBytes must be a non-negative integer, got ${options.maxBodyBytes}`);
  }
  const { maxTimeoutMs } = options;
  if (maxTimeoutMs !== undefined && !(Number.isFinite(maxTimeoutMs) && maxTimeoutMs > 0)) {
    throw new Error(`maxTimeoutMs must be a positive number, got ${maxTimeoutMs}`);
  }
  return {
    services: options.services,
    interceptors: options.interceptors ?? [],
    maxBodyBytes,
    writeError: options.writeError ?? writeJsonError,
    shutdownSignal: options.shutdownSignal,
    maxTimeoutMs,
    emitDefaults: options.emitDefaults ?? false,
    rejectUnknownQueryParameters: options.rejectUnknownQueryParameters ?? false,
  };
}

function compileRoutes(services: TranscoderOptions["services"], emitDefaults: boolean): Route<RouteTarget>[] {
  const registry = createRegistry(...services.map(({ service }) => service.file));
  const routes: Route<RouteTarget>[] = [];
  const seen = new Map<string, string>();
  for (const { service, impl } of services) {
    const implSpec = createServiceImplSpec(service, impl);
    for (const method of service.methods) {
      if (method.methodKind !== "unary") continue;
      for (const binding of readHttpBindings(method)) {
        const where = `${service.typeName}.${method.name}: google.api.http ${binding.httpMethod} "${binding.template}"`;
        const parsed = parsePathTemplate(binding.template);
        if (parsed.error !== undefined) throw new Error(`${where}: ${parsed.error}`);
        const template = parsed.value!;
        const key = `${binding.httpMethod} ${templateShape(template)}`;
        const other = seen.get(key);
        if (other !== undefined) throw new Error(`${where}: same route as ${other}`);
        seen.set(key, where);
        try {
          const target: RouteTarget = {
            spec: implSpec.methods[method.localName],
            plan: compileRequestPlan(method.input, template, binding.body, registry),
            serialize: compileResponseSerializer(method.output, binding.responseBody, registry, emitDefaults),
          };
          routes.push({ httpMethod: binding.httpMethod, template, target });
        } catch (e) {
          throw new Error(`${where}: ${e instanceof Error ? e.message : String(e)}`);
        }
      }
    }
  }
  return routes;
}

/** The path a template matches, without variable names: two routes with the same shape collide. */
function templateShape(template: PathTemplate): string {
  const parts = template.segments.map((s) => (s.kind === "literal" ? s.value : s.kind === "single" ? "*" : "**"));
  return "/" + parts.join("/") + (template.verb !== undefined ? ":" + template.verb : "");
}
