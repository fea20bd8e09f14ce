import type { DescMethod, DescService } from "@bufbuild/protobuf";
import type { ConnectError } from "@connectrpc/connect";
import { requestHeaders, type NodeRequest } from "../node-http/request.js";
import { beforeEnd, type NodeResponse } from "../node-http/response.js";
import type { HeaderStage } from "./header-stage.js";
import { JOURNAL_KEY_HEADER } from "./journal-key.js";
import type { Door, Protocol } from "./protocol.js";
import type { CallRecord, CallTracker } from "./record.js";

/** What a door makes of a request it serves. */
export interface DoorMatch {
  readonly protocol: Protocol;
  readonly door: Door;
  /** The method called; absent when the request is no call (a REST path with the wrong HTTP method). */
  readonly method?: DescMethod;
  /** The REST binding it matched, e.g. `POST /api/v1/prompts/passthrough/{provider_name}/`; RPC doors leave it out. */
  readonly route?: string;
  /**
   * Serves it. With a record, the door puts it in the handler context's values, completes it
   * with the outcome, and with a `refusal` answers that error without reading the body.
   */
  serve(call: CallRecord | undefined, refusal: ConnectError | undefined): void;
}

/** A way in: the REST transcoder, a unary fast path, connect-node. */
export interface CallDoor {
  /** The door's view of the request, or undefined (touching nothing) when it does not serve it. */
  match(req: NodeRequest, res: NodeResponse): DoorMatch | undefined;
}

export interface EntryOptions {
  /** Asked in order; the first that matches serves. */
  doors: readonly CallDoor[];
  tracker: CallTracker;
  headerStage: HeaderStage;
  /** Whose calls are recorded and pass the header stage; others (health, reflection) are served as they come. */
  services: ReadonlySet<DescService>;
}

/**
 * The one way in: whatever door a call comes through, it becomes one record here, its journal
 * key goes out as a response header, the header stage runs before any byte of the body is
 * read, and the record ends exactly once: as the door ends the response, or when it closes
 * unanswered. False: no door serves it.
 */
export function createEntry({ doors, tracker, headerStage, services }: EntryOptions): (req: NodeRequest, res: NodeResponse) => boolean {
  return (req, res) => {
    let match: DoorMatch | undefined;
    for (const door of doors) {
      match = door.match(req, res);
      if (match !== undefined) break;
    }
    if (match === undefined) return false;
    const { method } = match;
    if (method === undefined || !services.has(method.parent)) {
      match.serve(undefined, undefined);
      return true;
    }
    const call = tracker.start({ protocol: match.protocol, door: match.door, method, route: match.route, requestHeader: requestHeaders(req) });
    res.setHeader(JOURNAL_KEY_HEADER, call.journalKey);
    // The record ends as the door ends the response, before its last bytes go: the record's end
    // listeners (the journal's and the signals' write-ahead logs among them) have run before the
    // caller can have the whole answer, so a caller that has it never loses its entry or signals
    // to a crash that follows. A response already destroyed ends its record as cut short.
    beforeEnd(res, () => call.end(!("stream" in res ? res.stream.destroyed : res.destroyed)));
    // 'close' comes once per response: this ends a record that was never answered.
    res.once("close", () => call.end(res.writableEnded));
    const door = match;
    const serve = (refusal: ConnectError | undefined) => {
      if (refusal !== undefined) call.refuse();
      door.serve(call, refusal);
    };
    const refusal = headerStage(call);
    if (refusal instanceof Promise) void refusal.then(serve);
    else serve(refusal);
    return true;
  };
}
