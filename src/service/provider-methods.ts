import type { DescMethod } from "@bufbuild/protobuf";
import { PassthroughService } from "../gen/smarter/prompt/v1/passthrough_pb.js";

const providerMethods = new Set([PassthroughService.method.passthrough.name, PassthroughService.method.passthroughStream.name]);

/**
 * Whether a method sends a body to a provider: Passthrough and PassthroughStream, not
 * ListProviders. Only these are authorized per provider, journaled and signalled.
 */
export function callsProvider(method: DescMethod): boolean {
  return method.parent.typeName === PassthroughService.typeName && providerMethods.has(method.name);
}
