import { describe, expect, it } from "vitest";
import { BODY_JSON, eventJson, eventJsonWithoutBody, eventsJson, type SignalEvent } from "../../src/signals/sink.js";
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

  it("is kept on the event without changing what copies and comparisons see, and a frozen event is serialized all the same", () => {
    const event = base();
    const copy = { ...event };
    eventJson(event);
    eventJsonWithoutBody(event);
    expect(event).toStrictEqual(copy);
    expect({ ...event }).toStrictEqual(copy);
    const frozen = Object.freeze(base());
    expect(eventJson(frozen)).toBe(JSON.stringify(frozen));
  });

  it("makes a batch one JSON array of them", () => {
    const events = sampleEvents(3);
    expect(eventsJson(events)).toBe(JSON.stringify(events));
    expect(eventsJson([])).toBe("[]");
  });
});
