import { hostname } from "node:os";
import * as grpc from "@grpc/grpc-js";
import { create, createFileRegistry, fromBinary, getOption, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { http } from "../../src/gen/google/api/annotations_pb.js";
import {
  HealthCheckResponse_ServingStatus as ServingStatus,
  HealthListRequestSchema,
  HealthListResponseSchema,
  type HealthListResponse,
} from "../../src/gen/grpc/health/v1/health_pb.js";
import {
  ExtensionRequestSchema,
  ServerReflectionRequestSchema,
  ServerReflectionResponseSchema,
  type ServerReflectionRequest,
  type ServerReflectionResponse,
} from "../../src/gen/grpc/reflection/v1/reflection_pb.js";
import { callStream, createProtocolClient } from "../support/clients.js";
import { check, codec, grpcClient, watch } from "../support/health-clients.js";
import { startFakeProvider, type FakeProvider } from "../support/fake-provider.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";
import { NO_CACHE } from "../support/no-cache.js";

const SERVICE = "smarter.prompt.v1.PassthroughService";
const JOURNAL_SERVICE = "smarter.prompt.v1.JournalService";
const ADMIN_SERVICE = "smarter.prompt.v1.AdminService";

let provider: FakeProvider;
beforeAll(async () => {
  provider = await startFakeProvider();
});
afterAll(() => provider?.close());

const startGateway = (server: { shutdownTimeoutMs?: number; drainDelayMs?: number } = {}) =>
  startTestGateway({ server, providers: [{ name: "local", baseUrl: provider.url, apiKeyEnv: "LOCAL_KEY", retries: 0 }] }, { LOCAL_KEY: "sk-test" });

/** Sends each request on one ServerReflectionInfo stream, then half-closes; resolves with every response. */
function reflect(client: grpc.Client, requests: ServerReflectionRequest[], version: "v1" | "v1alpha" = "v1"): Promise<ServerReflectionResponse[]> {
  // v1alpha's messages are v1's under another package, identical on the wire: the v1 codecs serve both.
  const { serialize } = codec(ServerReflectionRequestSchema);
  const { deserialize } = codec(ServerReflectionResponseSchema);
  const call = client.makeBidiStreamRequest(`/grpc.reflection.${version}.ServerReflection/ServerReflectionInfo`, serialize, deserialize);
  const responses: ServerReflectionResponse[] = [];
  return new Promise((resolve, reject) => {
    call.on("data", (message: ServerReflectionResponse) => responses.push(message));
    call.on("error", reject);
    call.on("end", () => resolve(responses));
    for (const message of requests) call.write(message);
    call.end();
  });
}

const ask = (messageRequest: ServerReflectionRequest["messageRequest"]) => create(ServerReflectionRequestSchema, { host: "localhost", messageRequest });

describe("gRPC health and reflection", () => {
  let gateway: TestGateway;
  let client: grpc.Client;
  beforeAll(async () => {
    gateway = await startGateway();
    client = grpcClient(gateway.url);
  });
  afterAll(async () => {
    client?.close();
    await gateway?.close();
  });

  it.each(["", SERVICE, JOURNAL_SERVICE, ADMIN_SERVICE])("Check(%j) is SERVING while the gateway is ready", async (service) => {
    expect(await check(client, service)).toEqual({ status: ServingStatus.SERVING });
  });

  it("List reports every service SERVING", async () => {
    const { serialize } = codec(HealthListRequestSchema);
    const { deserialize } = codec(HealthListResponseSchema);
    const response = await new Promise<HealthListResponse | undefined>((resolve, reject) =>
      client.makeUnaryRequest("/grpc.health.v1.Health/List", serialize, deserialize, create(HealthListRequestSchema), (error: grpc.ServiceError | null, value?: HealthListResponse) =>
        error ? reject(error) : resolve(value),
      ),
    );
    expect(Object.fromEntries(Object.entries(response?.statuses ?? {}).map(([name, s]) => [name, s.status]))).toEqual({
      "": ServingStatus.SERVING,
      [SERVICE]: ServingStatus.SERVING,
      [JOURNAL_SERVICE]: ServingStatus.SERVING,
      [ADMIN_SERVICE]: ServingStatus.SERVING,
    });
  });

  it("Check of an unknown service is NOT_FOUND", async () => {
    expect(await check(client, "no.such.Service")).toEqual({ code: "not_found" });
  });

  it("Watch of an unknown service sends SERVICE_UNKNOWN and keeps the call open", async () => {
    const watcher = watch(client, "no.such.Service");
    await watcher.received(1);
    expect(watcher.statuses).toEqual([ServingStatus.SERVICE_UNKNOWN]);
    watcher.call.cancel();
    expect(await watcher.ended).toBe("canceled");
  });

  it("list_services names every service served, over v1 and v1alpha", async () => {
    for (const version of ["v1", "v1alpha"] as const) {
      const [answer] = await reflect(client, [ask({ case: "listServices", value: "" })], version);
      expect(answer.validHost).toBe("localhost");
      expect(answer.messageResponse.case).toBe("listServicesResponse");
      const names = answer.messageResponse.case === "listServicesResponse" ? answer.messageResponse.value.service.map((s) => s.name) : [];
      expect(names).toEqual(
        expect.arrayContaining([SERVICE, JOURNAL_SERVICE, ADMIN_SERVICE, "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"]),
      );
    }
  });

  it("file_containing_symbol returns passthrough.proto with its http options and every dependency", async () => {
    const [answer] = await reflect(client, [ask({ case: "fileContainingSymbol", value: SERVICE })]);
    expect(answer.messageResponse.case).toBe("fileDescriptorResponse");
    const bytes = answer.messageResponse.case === "fileDescriptorResponse" ? answer.messageResponse.value.fileDescriptorProto : [];
    const files = bytes.map((b) => fromBinary(FileDescriptorProtoSchema, b));
    expect(files[0].name).toBe("smarter/prompt/v1/passthrough.proto");
    expect(files.map((f) => f.name)).toEqual(
      expect.arrayContaining(["google/api/annotations.proto", "google/api/http.proto", "google/protobuf/struct.proto", "google/protobuf/descriptor.proto"]),
    );
    // The set is complete: a registry builds from it alone, and the method keeps its google.api.http rule.
    const registry = createFileRegistry(files[0], (name) => files.find((f) => f.name === name));
    const method = registry.getService(SERVICE)?.methods.find((m) => m.name === "Passthrough");
    expect(method).toBeDefined();
    const rule = getOption(method!, http);
    expect(rule.pattern).toEqual({ case: "post", value: "/api/v1/prompts/passthrough/{provider_name}/" });
    expect(rule.additionalBindings).toHaveLength(1);
  });

  it("answers methods, files by name and extensions, and skips files already sent on the stream", async () => {
    const answers = await reflect(client, [
      ask({ case: "fileContainingSymbol", value: `${SERVICE}.PassthroughStream` }),
      ask({ case: "fileByFilename", value: "google/api/http.proto" }),
      ask({ case: "fileContainingExtension", value: create(ExtensionRequestSchema, { containingType: "google.protobuf.MethodOptions", extensionNumber: 72295728 }) }),
      ask({ case: "allExtensionNumbersOfType", value: "google.protobuf.MethodOptions" }),
    ]);
    const names = answers.map((a) =>
      a.messageResponse.case === "fileDescriptorResponse" ? a.messageResponse.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b).name) : [],
    );
    expect(names[0][0]).toBe("smarter/prompt/v1/passthrough.proto");
    expect(names[1]).toEqual(["google/api/http.proto"]);
    expect(names[2]).toEqual(["google/api/annotations.proto"]);
    expect(answers[3].messageResponse).toMatchObject({ case: "allExtensionNumbersResponse", value: { baseTypeName: "google.protobuf.MethodOptions", extensionNumber: [72295728] } });
  });

  it.each([
    { what: "an unknown symbol", request: ask({ case: "fileContainingSymbol", value: "no.such.Symbol" }) },
    { what: "an unknown file", request: ask({ case: "fileByFilename", value: "no/such.proto" }) },
    { what: "an unknown type's extensions", request: ask({ case: "allExtensionNumbersOfType", value: "no.such.Type" }) },
  ])("$what is an error_response with NOT_FOUND (5), and the stream goes on", async ({ request }) => {
    const answers = await reflect(client, [request, ask({ case: "listServices", value: "" })]);
    expect(answers[0].messageResponse).toMatchObject({ case: "errorResponse", value: { errorCode: 5 } });
    expect(answers[1].messageResponse.case).toBe("listServicesResponse");
  });
});

describe("gRPC health during shutdown", () => {
  it("Watch sends NOT_SERVING and ends once close() has begun; Check is then NOT_SERVING or unavailable", async () => {
    const gateway = await startGateway({ shutdownTimeoutMs: 10_000 });
    const client = grpcClient(gateway.url);
    const watcher = watch(client, SERVICE);
    await watcher.received(1);
    expect(watcher.statuses).toEqual([ServingStatus.SERVING]);

    const startedAt = Date.now();
    const closing = gateway.close();
    await watcher.received(2);
    expect(watcher.statuses).toEqual([ServingStatus.SERVING, ServingStatus.NOT_SERVING]);
    expect(await watcher.ended).toBe("ok");
    expect(await check(client, "")).toSatisfy((r: { status?: ServingStatus; code?: string }) => r.status === ServingStatus.NOT_SERVING || r.code === "unavailable");
    await closing;
    // The open Watch did not hold the drain until the deadline.
    expect(Date.now() - startedAt).toBeLessThan(5_000);
    client.close();
  });
});

describe("draining: server.drainDelayMs", () => {
  it("turns /readyz to 503 at once, keeps serving new connections for the delay, then stops accepting", async () => {
    const gateway = await startGateway({ drainDelayMs: 1000, shutdownTimeoutMs: 5000 });
    const startedAt = Date.now();
    const closing = gateway.close();
    expect((await fetch(`${gateway.url}/readyz`)).status).toBe(503);
    // A new channel opens a new connection: a balancer that has not yet seen the 503 is still served.
    const client = createProtocolClient("grpc", gateway.url);
    expect((await client.unary("local", { model: "m" })).ok).toBe(true);
    client.close();
    expect(Date.now() - startedAt).toBeLessThan(1000);
    await closing;
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(1000);
    await expect(fetch(`${gateway.url}/healthz`)).rejects.toThrow();
  });
});

describe("GET /metrics", () => {
  let gateway: TestGateway;
  beforeAll(async () => {
    gateway = await startGateway();
  });
  afterAll(() => gateway?.close());

  it("counts calls by protocol, provider and code, with their durations, in the Prometheus format", async () => {
    const rest = await createProtocolClient("rest", gateway.url).unary("local", { model: "m" });
    expect(rest.ok).toBe(true);
    const grpcCall = createProtocolClient("grpc", gateway.url);
    expect((await grpcCall.unary("nope", { model: "m" })).code).toBe("not_found");
    grpcCall.close();
    expect((await createProtocolClient("grpc-web", gateway.url).unary("LOCAL", { model: "m" })).ok).toBe(true);
    expect((await callStream("connect", gateway.url, "local", { model: "m" })).code).toBeUndefined();
    // Health and reflection probes are not calls.
    const client = grpcClient(gateway.url);
    await check(client, "");
    client.close();

    const response = await fetch(`${gateway.url}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^text\/plain/);
    expect(Object.fromEntries(response.headers)).toMatchObject(NO_CACHE);
    const text = await response.text();
    const calls = text.split("\n").filter((line) => line.startsWith("passthrough_calls_total{"));
    expect(calls.sort()).toEqual(
      [
        'passthrough_calls_total{protocol="connect",provider="local",code="ok"} 1',
        'passthrough_calls_total{protocol="grpc",provider="",code="not_found"} 1',
        'passthrough_calls_total{protocol="grpc-web",provider="local",code="ok"} 1',
        'passthrough_calls_total{protocol="rest",provider="local",code="ok"} 1',
      ].sort(),
    );
    expect(text).toContain("# TYPE passthrough_call_duration_seconds histogram");
    expect(text).toMatch(/passthrough_call_duration_seconds_bucket\{le="120",protocol="rest",provider="local"\} 1/);
    expect(text).toMatch(/passthrough_call_duration_seconds_count\{protocol="grpc",provider=""\} 1/);
    expect(text).toMatch(/passthrough_call_duration_seconds_bucket\{le="\+Inf",protocol="connect",provider="local"\} 1/);
    expect(text).toContain("process_cpu_user_seconds_total");
    expect(text).not.toContain("passthrough_auth_refusals_total");
    // server.instanceId, which on port 0 is the host's name and a random suffix.
    expect(text).toContain(`passthrough_instance_info{instance_id="${hostname()}-`);
    expect(text).toMatch(/^passthrough_instance_info\{instance_id="[^"]+-[0-9a-f]{8}"\} 1$/m);
  });
});
