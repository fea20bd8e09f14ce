import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { kCallRecord } from "../call/record.js";
import type { Config } from "../config/schema.js";
import { AdminService, LoggingSettingsSchema, type LoggingSettings } from "../gen/smarter/prompt/v1/admin_pb.js";

type LoggingConfig = Config["logging"];

const LEVELS: ReadonlySet<string> = new Set<LoggingConfig["level"]>(["trace", "debug", "info", "warn", "error", "fatal", "silent"]);

export interface AdminServiceOptions {
  /** The logging settings in force. */
  logging(): LoggingConfig;
  /** Applies new logging settings, naming who changed them (a principal id) for the log. */
  reconfigureLogging(settings: LoggingConfig, by: string): void;
}

/**
 * AdminService: the logging switches of a running gateway. Authorization is authentication's
 * (src/interceptors/auth.ts refuses a principal that is not an admin); this service also
 * refuses a call that has no principal at all, so that a gateway that does not authenticate
 * (tests, the benchmark) never lets anyone in.
 */
export function createAdminService({ logging, reconfigureLogging }: AdminServiceOptions): ServiceImpl<typeof AdminService> {
  const settings = (): LoggingSettings => {
    const { logPrompt, level } = logging();
    return create(LoggingSettingsSchema, { logPrompt, level });
  };
  return {
    getLogging(_request, context) {
      adminOf(context);
      return settings();
    },
    setLogging({ logPrompt, level }, context) {
      const by = adminOf(context);
      if (level !== undefined && !LEVELS.has(level)) {
        throw new ConnectError(`level must be one of ${[...LEVELS].join(", ")}`, Code.InvalidArgument);
      }
      const current = logging();
      reconfigureLogging({ logPrompt: logPrompt ?? current.logPrompt, level: (level as LoggingConfig["level"] | undefined) ?? current.level }, by);
      return settings();
    },
  };
}

function adminOf(context: HandlerContext): string {
  const principal = context.values.get(kCallRecord)?.principal;
  if (principal === undefined) throw new ConnectError("permission denied: the admin API needs an authenticated admin key", Code.PermissionDenied);
  return principal.id;
}
