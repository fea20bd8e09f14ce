import { create, createRegistry, fromBinary, toBinary, type DescFile, type DescService, type Registry } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, type ServiceImpl } from "@connectrpc/connect";
import {
  ErrorResponseSchema,
  ExtensionNumberResponseSchema,
  FileDescriptorResponseSchema,
  ListServiceResponseSchema,
  ServerReflection,
  ServerReflectionRequestSchema,
  ServerReflectionResponseSchema,
  type ServerReflectionRequest,
  type ServerReflectionResponse,
} from "../gen/grpc/reflection/v1/reflection_pb.js";
import {
  ServerReflection as ServerReflectionV1alpha,
  ServerReflectionRequestSchema as V1alphaRequestSchema,
  ServerReflectionResponseSchema as V1alphaResponseSchema,
} from "../gen/grpc/reflection/v1alpha/reflection_pb.js";

/**
 * gRPC server reflection (`grpc.reflection.v1.ServerReflection`), answered from the
 * descriptors compiled into the generated code: each file goes out as a serialized
 * FileDescriptorProto with its transitive dependencies (those already sent on the same stream
 * are skipped, as the protocol allows). `services` are the services the server registers.
 */
export function createReflectionService(services: readonly DescService[]): ServiceImpl<typeof ServerReflection> {
  const answer = createReflectionAnswerer(services);
  return {
    async *serverReflectionInfo(requests) {
      const sent = new Set<string>();
      for await (const request of requests) yield answer(request, sent);
    },
  };
}

/**
 * The deprecated `grpc.reflection.v1alpha.ServerReflection`, which older clients still ask
 * first. Its messages are the v1 messages under another package, identical on the wire.
 */
export function createReflectionV1alphaService(services: readonly DescService[]): ServiceImpl<typeof ServerReflectionV1alpha> {
  const answer = createReflectionAnswerer(services);
  return {
    async *serverReflectionInfo(requests) {
      const sent = new Set<string>();
      for await (const request of requests) {
        const response = answer(fromBinary(ServerReflectionRequestSchema, toBinary(V1alphaRequestSchema, request)), sent);
        yield fromBinary(V1alphaResponseSchema, toBinary(ServerReflectionResponseSchema, response));
      }
    },
  };
}

type Answer = ServerReflectionResponse["messageResponse"];

/** Builds the index once; the returned function answers one request of a stream. */
function createReflectionAnswerer(services: readonly DescService[]) {
  const files = fileClosure(services.map((service) => service.file));
  const registry = createRegistry(...files.values());
  const serviceNames = services.map((service) => service.typeName).sort();
  const extensionNumbers = collectExtensionNumbers(registry);
  const serialized = new Map<string, Uint8Array>();
  const bytesOf = (file: DescFile) => {
    let bytes = serialized.get(file.proto.name);
    if (bytes === undefined) serialized.set(file.proto.name, (bytes = toBinary(FileDescriptorProtoSchema, file.proto)));
    return bytes;
  };

  /** The file first, then each dependency not yet sent on this stream. */
  const withDependencies = (file: DescFile, sent: Set<string>): Answer => {
    const out = [bytesOf(file)];
    sent.add(file.proto.name);
    for (const dependency of fileClosure([file]).values()) {
      if (sent.has(dependency.proto.name)) continue;
      sent.add(dependency.proto.name);
      out.push(bytesOf(dependency));
    }
    return { case: "fileDescriptorResponse", value: create(FileDescriptorResponseSchema, { fileDescriptorProto: out }) };
  };

  const answer = (request: ServerReflectionRequest, sent: Set<string>): Answer => {
    const { messageRequest } = request;
    switch (messageRequest.case) {
      case "listServices":
        return { case: "listServicesResponse", value: create(ListServiceResponseSchema, { service: serviceNames.map((name) => ({ name })) }) };
      case "fileByFilename": {
        const file = files.get(messageRequest.value);
        return file ? withDependencies(file, sent) : notFound(`file not found: ${messageRequest.value}`);
      }
      case "fileContainingSymbol": {
        const file = fileOfSymbol(registry, messageRequest.value);
        return file ? withDependencies(file, sent) : notFound(`symbol not found: ${messageRequest.value}`);
      }
      case "fileContainingExtension": {
        const { containingType, extensionNumber } = messageRequest.value;
        const extendee = registry.getMessage(containingType);
        const extension = extendee && registry.getExtensionFor(extendee, extensionNumber);
        return extension ? withDependencies(extension.file, sent) : notFound(`extension not found: ${containingType}(${extensionNumber})`);
      }
      case "allExtensionNumbersOfType": {
        const typeName = messageRequest.value;
        if (registry.getMessage(typeName) === undefined) return notFound(`type not found: ${typeName}`);
        return {
          case: "allExtensionNumbersResponse",
          value: create(ExtensionNumberResponseSchema, { baseTypeName: typeName, extensionNumber: extensionNumbers.get(typeName) ?? [] }),
        };
      }
      default:
        return errorAnswer(Code.InvalidArgument, "no request set in message_request");
    }
  };

  return (request: ServerReflectionRequest, sent: Set<string>): ServerReflectionResponse =>
    create(ServerReflectionResponseSchema, { validHost: request.host, originalRequest: request, messageResponse: answer(request, sent) });
}

/** The files and all they import, by name, each once. */
function fileClosure(roots: readonly DescFile[]): Map<string, DescFile> {
  const files = new Map<string, DescFile>();
  const visit = (file: DescFile) => {
    if (files.has(file.proto.name)) return;
    files.set(file.proto.name, file);
    file.dependencies.forEach(visit);
  };
  roots.forEach(visit);
  return files;
}

/** The file declaring a type (message, enum, service, extension) or a member (method, field). */
function fileOfSymbol(registry: Registry, symbol: string): DescFile | undefined {
  const name = symbol.startsWith(".") ? symbol.slice(1) : symbol;
  const type = registry.get(name);
  if (type !== undefined) return type.file;
  const dot = name.lastIndexOf(".");
  if (dot < 0) return undefined;
  const parent = registry.get(name.slice(0, dot));
  const member = name.slice(dot + 1);
  if (parent?.kind === "service" && parent.methods.some((method) => method.name === member)) return parent.file;
  if (parent?.kind === "message" && (parent.fields.some((field) => field.name === member) || parent.oneofs.some((oneof) => oneof.name === member))) return parent.file;
  return undefined;
}

function collectExtensionNumbers(registry: Registry): Map<string, number[]> {
  const numbers = new Map<string, number[]>();
  for (const type of registry) {
    if (type.kind !== "extension") continue;
    const list = numbers.get(type.extendee.typeName) ?? [];
    list.push(type.number);
    numbers.set(type.extendee.typeName, list);
  }
  return numbers;
}

const notFound = (message: string): Answer => errorAnswer(Code.NotFound, message);

function errorAnswer(code: Code, message: string): Answer {
  return { case: "errorResponse", value: create(ErrorResponseSchema, { errorCode: code, errorMessage: message }) };
}
