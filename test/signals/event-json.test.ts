import { describe, expect, it } from "vitest";
import { BODY_JSON, EmittedEvent, eventJson, eventJsonWithoutBody, eventsJson, type SignalEvent } from "../../src/signals/sink.js";
import { sampleEvents } from "./sink.contract.js";

// The one serialization of an event that the write-ahead log and every sink share.
const base = (): SignalEvent => ({ ...sampleEvents(1)[0], signal: "chat_completion_response", data: { upstream_status: 200 } });

describe("an event's JSON", () => {
  it("is JSON.stringify's for an event without a body text, and the same without its body when it has none", () => {
    const event = base();
    expect(eventJson(event)).toBe(JSON.stringify(event));
    expect(eventJsonWithoutBody(event)).toBe(JSON.stringify(event));
    const parsed: SignalEvent = { ...base(), data: { body: { n: 1 }, upstream_status: 200 } };
    expect(eventJson(parsed)).toBe(JSON.stringify(parsed));
    expect(eventJsonWithoutBody(parsed)).toBe(JSON.stringify({ ...parsed, data: { upstream_status: 200 } }));
  });

  it("writes a body text in as it is, and leaves it out on request", () => {
    const text = '{ "big": 12345678901234567890123,  "x": 1.50 }';
    const event: SignalEvent = { ...base(), data: { upstream_status: 200, body: JSON.parse(text) as SignalEvent["data"] }, [BODY_JSON]: text };
    const json = eventJson(event);
    expect(json.endsWith(`"data":{"upstream_status":200,"body":${text}}}`)).toBe(true);
    expect(JSON.parse(json)).toEqual(JSON.parse(JSON.stringify(event)));
    expect(JSON.parse(eventJsonWithoutBody(event))).toEqual(JSON.parse(JSON.stringify({ ...event, data: { upstream_status: 200 } })));
    const alone: SignalEvent = { ...base(), data: { body: {} }, [BODY_JSON]: "{}" };
    expect(JSON.parse(eventJson(alone)).data).toEqual({ body: {} });
    expect(JSON.parse(eventJsonWithoutBody(alone)).data).toEqual({});
  });

  it("is made once for an emitted event, kept where copies, comparisons and JSON do not see it", () => {
    const fields = { ...base(), data: { upstream_status: 200, body: { n: 1 } } };
    const text = '{"n": 1}';
    const event = new EmittedEvent(fields, text);
    const json = eventJson(event);
    expect(json).toBe(eventJson({ ...fields, [BODY_JSON]: text }));
    expect(eventJsonWithoutBody(event)).toBe(JSON.stringify({ ...fields, data: { upstream_status: 200 } }));
    expect(event[BODY_JSON]).toBe(text);
    // Made once: what is asked later is the first text (an event does not change once emitted).
    (event.data as { upstream_status: number }).upstream_status = 500;
    expect(eventJson(event)).toBe(json);
    expect(eventJsonWithoutBody(event)).toContain('"upstream_status":200');
    // A copy has the fields and nothing else; so has the event's own JSON.
    expect({ ...event }).toStrictEqual({ ...fields, data: event.data });
    expect(Object.keys(JSON.parse(JSON.stringify(event)) as object)).toEqual(Object.keys(fields));
    expect(event).toEqual({ ...fields, data: event.data });
  });

  it("is JSON.stringify's for a plain event too, frozen or not", () => {
    const event = base();
    expect(eventJson(event)).toBe(JSON.stringify(event));
    const frozen = Object.freeze(base());
    expect(eventJson(frozen)).toBe(JSON.stringify(frozen));
  });

  it("makes a batch one JSON array of them", () => {
    const events = sampleEvents(3);
    expect(eventsJson(events)).toBe(JSON.stringify(events));
    expect(eventsJson([])).toBe("[]");
  });
});
