import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { JournalService } from "../src/gen/smarter/prompt/v1/journal_pb.js";
import { PassthroughService } from "../src/gen/smarter/prompt/v1/passthrough_pb.js";

/** The gateway's two services as the page calls them, over gRPC-Web only. */
export interface Gateway {
  /** The gateway's origin (and path prefix, if any) the calls go to. */
  readonly baseUrl: string;
  readonly passthrough: Client<typeof PassthroughService>;
  readonly journal: Client<typeof JournalService>;
}

/**
 * The gateway this page talks to: its own origin, or `?gateway=URL` for a copy of the page
 * served elsewhere (the gateway's CORS must list that origin). `apiKey` is read on every call,
 * so a new key applies without a new transport.
 */
export function connectGateway(location: Location, apiKey: () => string): Gateway {
  const asked = new URLSearchParams(location.search).get("gateway");
  const baseUrl = asked === null || asked === "" ? location.origin : asked.replace(/\/+$/, "");
  const authorize: Interceptor = (next) => (req) => {
    const key = apiKey();
    if (key !== "") req.header.set("authorization", `Bearer ${key}`);
    return next(req);
  };
  const transport = createGrpcWebTransport({ baseUrl, interceptors: [authorize] });
  return { baseUrl, passthrough: createClient(PassthroughService, transport), journal: createClient(JournalService, transport) };
}

/** A failed call as the page shows it: the gRPC code's canonical name and number, and the gateway's description. */
export interface CallFailure {
  readonly code: Code;
  /** `UNAUTHENTICATED`, `DEADLINE_EXCEEDED`…, as gRPC spells them. */
  readonly codeName: string;
  readonly description: string;
  /** The browser never reached the gateway, or refused it the answer (CORS, CSP, offline). */
  readonly network: boolean;
}

/** Describes any error a call threw; a fetch that failed is said to be one, with what to check. */
export function describeFailure(error: unknown, baseUrl: string): CallFailure {
  const failure = ConnectError.from(error);
  const network = failure.code === Code.Unknown && failure.cause instanceof TypeError;
  const description = network
    ? `no answer from ${baseUrl} (${failure.rawMessage}): the gateway is down, or this page's origin ` +
      `(${globalThis.location?.origin ?? "?"}) is not in its auth.cors.origins`
    : failure.rawMessage || "(no description)";
  return { code: failure.code, codeName: network ? "NETWORK_ERROR" : codeName(failure.code), description, network };
}

/** connect's `DeadlineExceeded` as gRPC's `DEADLINE_EXCEEDED`; gRPC spells code 1 `CANCELLED`. */
export function codeName(code: Code | 0): string {
  if (code === 0) return "OK";
  if (code === Code.Canceled) return "CANCELLED";
  return (Code[code] ?? `CODE_${code}`).replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}
