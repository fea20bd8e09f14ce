import type { SignalEvent, SignalSink } from "../../src/signals/sink.js";

/** A sink of the test's own: every event it is given lands in `events`, in order. */
export function memorySink(events: SignalEvent[]): SignalSink {
  return {
    name: "memory",
    async deliver(batch) {
      events.push(...batch);
    },
    async close() {},
  };
}
