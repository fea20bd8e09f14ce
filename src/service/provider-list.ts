import type { ServiceImpl } from "@connectrpc/connect";
import { kCallRecord } from "../call/record.js";
import type { PassthroughService } from "../gen/smarter/prompt/v1/passthrough_pb.js";
import type { ProviderRegistry } from "../providers/registry.js";

/**
 * ListProviders: the enabled providers by name, sorted, and only those the caller's key may
 * use (what it could call anyway), so a picker never offers a PERMISSION_DENIED. Names only:
 * a base URL or a credential never leaves the gateway.
 */
export function createProviderList(providers: ProviderRegistry): Pick<ServiceImpl<typeof PassthroughService>, "listProviders"> {
  const names = providers.list().map((provider) => provider.name).sort();
  return {
    listProviders(_request, context) {
      const allowed = context.values.get(kCallRecord)?.principal?.allowedProviders;
      const visible = allowed == null ? names : names.filter((name) => allowed.includes(name));
      return { providers: visible.map((name) => ({ name })) };
    },
  };
}
