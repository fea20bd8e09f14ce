import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { createSseParser } from "../providers/sse-parser.js";

/**
 * A streamed call's answer as one object (the journal's response body, SPEC section 7, and the
 * `chat_completion_response` signal's): the relayed `chat.completion.chunk` events assembled
 * into one `chat.completion`, each choice's deltas joined, plus `chunks` (how many were read)
 * and `truncated` when the record kept only the first events. Events are added as they are
 * relayed, so that a long stream's end costs no pass over all of them: JSON chunks (RPC) or
 * whole SSE blocks (REST). A provider may send anything, so no shape makes this throw: what is
 * not a chunk is skipped, and event data that is not a JSON object is kept as text in `unparsed`.
 */
export class StreamAssembly {
  readonly #assembly = new Assembly();
  // One parser over every block: blocks are whole, and a last one without its blank line still counts.
  #parser: ReturnType<typeof createSseParser> | undefined;

  add(event: JsonObject | Uint8Array): void {
    if (event instanceof Uint8Array) {
      this.#parser ??= createSseParser(Number.POSITIVE_INFINITY);
      for (const { data } of this.#parser.push(event)) this.#assembly.addData(data);
    } else if (isObject(event)) {
      this.#assembly.addChunk(event);
    }
  }

  /** The `usage` of the last chunk that had one. */
  get usage(): JsonObject | undefined {
    return this.#assembly.usage;
  }

  result(truncated: boolean): JsonObject {
    if (this.#parser !== undefined) {
      for (const { data } of this.#parser.end()) this.#assembly.addData(data);
      this.#parser = undefined;
    }
    return this.#assembly.result(truncated);
  }
}

/** The events, assembled at once (for events not relayed through a record). */
export function assembleStream(events: ReadonlyArray<JsonObject | Uint8Array>, truncated: boolean): JsonObject {
  const assembly = new StreamAssembly();
  for (const event of events) assembly.add(event);
  return assembly.result(truncated);
}

type Json = JsonValue | undefined;

const isObject = (value: Json): value is JsonObject => typeof value === "object" && value !== null && !Array.isArray(value);

/** A non-negative integer index, or `fallback`. */
const validIndex = (value: Json, fallback: number) => (typeof value === "number" && Number.isSafeInteger(value) && value >= 0 ? value : fallback);

class Assembly {
  #chunks = 0;
  #id: Json;
  #created: Json;
  #model: Json;
  /** Chunk-level fields a chat.completion also has; the first value seen is kept. */
  readonly #extra = new Map<string, JsonValue>();
  readonly #choices = new Map<number, ChoiceAssembly>();
  #usage: JsonObject | undefined;
  #error: Json;
  readonly #unparsed: string[] = [];

  get usage(): JsonObject | undefined {
    return this.#usage;
  }

  addData(data: string): void {
    if (data.trim() === "[DONE]") return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(data);
    } catch {
      parsed = undefined;
    }
    if (isObject(parsed as Json)) this.addChunk(parsed as JsonObject);
    else this.#unparsed.push(data);
  }

  addChunk(chunk: JsonObject): void {
    this.#chunks++;
    this.#id ??= typeof chunk.id === "string" ? chunk.id : undefined;
    this.#created ??= typeof chunk.created === "number" ? chunk.created : undefined;
    this.#model ??= typeof chunk.model === "string" ? chunk.model : undefined;
    for (const key of ["system_fingerprint", "service_tier"]) {
      const value = chunk[key];
      if (value !== undefined && value !== null && !this.#extra.has(key)) this.#extra.set(key, value);
    }
    if (isObject(chunk.usage)) this.#usage = chunk.usage;
    // A provider that fails midway may send `{"error": {...}}` as an event.
    if (chunk.error !== undefined && chunk.error !== null) this.#error = chunk.error;
    if (!Array.isArray(chunk.choices)) return;
    chunk.choices.forEach((choice, position) => {
      if (!isObject(choice)) return;
      const index = validIndex(choice.index, position);
      let assembly = this.#choices.get(index);
      if (assembly === undefined) this.#choices.set(index, (assembly = new ChoiceAssembly(index)));
      assembly.add(choice);
    });
  }

  result(truncated: boolean): JsonObject {
    const choices = [...this.#choices.values()].sort((a, b) => a.index - b.index).map((choice) => choice.result());
    return Object.fromEntries([
      ["id", this.#id ?? null],
      ["object", "chat.completion"],
      ["created", this.#created ?? null],
      ["model", this.#model ?? null],
      ...this.#extra,
      ["choices", choices],
      ["usage", this.#usage ?? null],
      ["chunks", this.#chunks],
      ...(truncated ? [["truncated", true]] : []),
      ...(this.#error !== undefined ? [["error", this.#error]] : []),
      ...(this.#unparsed.length > 0 ? [["unparsed", this.#unparsed]] : []),
    ]) as JsonObject;
  }
}

/** One choice's deltas: text fields joined, arrays concatenated, anything else the last value. */
class ChoiceAssembly {
  #role: string | undefined;
  readonly #fields = new Map<string, { text: string[] } | { items: JsonValue[] } | { value: JsonValue }>();
  readonly #toolCalls = new Map<number, ToolCallAssembly>();
  #functionCall: { name: string | undefined; arguments: string[] } | undefined;
  #finishReason: JsonValue = null;
  #logprobs: Map<string, JsonValue[]> | undefined;

  constructor(readonly index: number) {}

  add(choice: JsonObject): void {
    if (choice.finish_reason !== undefined && choice.finish_reason !== null) this.#finishReason = choice.finish_reason;
    if (isObject(choice.logprobs)) {
      this.#logprobs ??= new Map();
      for (const [key, value] of Object.entries(choice.logprobs)) {
        if (!Array.isArray(value)) continue;
        const items = this.#logprobs.get(key);
        if (items === undefined) this.#logprobs.set(key, [...value]);
        else for (const item of value) items.push(item);
      }
    }
    // `delta` in chunks; a provider that sends whole `message`s is read the same way.
    const delta = isObject(choice.delta) ? choice.delta : isObject(choice.message) ? choice.message : undefined;
    if (delta === undefined) return;
    for (const [key, value] of Object.entries(delta)) {
      if (value === null || value === undefined) continue;
      if (key === "role") this.#role ??= typeof value === "string" ? value : undefined;
      else if (key === "tool_calls") this.#addToolCalls(value);
      else if (key === "function_call") this.#addFunctionCall(value);
      else this.#addField(key, value);
    }
  }

  #addField(key: string, value: JsonValue): void {
    const field = this.#fields.get(key);
    if (typeof value === "string" && (field === undefined || "text" in field)) {
      if (field === undefined) this.#fields.set(key, { text: [value] });
      else field.text.push(value);
    } else if (Array.isArray(value) && (field === undefined || "items" in field)) {
      if (field === undefined) this.#fields.set(key, { items: [...value] });
      else for (const item of value) field.items.push(item);
    } else {
      this.#fields.set(key, { value });
    }
  }

  #addToolCalls(value: JsonValue): void {
    if (!Array.isArray(value)) return;
    value.forEach((call, position) => {
      if (!isObject(call)) return;
      const index = validIndex(call.index, position);
      let assembly = this.#toolCalls.get(index);
      if (assembly === undefined) this.#toolCalls.set(index, (assembly = new ToolCallAssembly(index)));
      assembly.add(call);
    });
  }

  #addFunctionCall(value: JsonValue): void {
    if (!isObject(value)) return;
    this.#functionCall ??= { name: undefined, arguments: [] };
    if (typeof value.name === "string" && value.name !== "") this.#functionCall.name ??= value.name;
    if (typeof value.arguments === "string") this.#functionCall.arguments.push(value.arguments);
  }

  result(): JsonObject {
    const fields = new Map<string, JsonValue>();
    for (const [key, field] of this.#fields) fields.set(key, "text" in field ? field.text.join("") : "items" in field ? field.items : field.value);
    const content = fields.get("content") ?? null;
    fields.delete("content");
    const toolCalls = [...this.#toolCalls.values()].sort((a, b) => a.index - b.index).map((call) => call.result());
    const message = Object.fromEntries([
      ["role", this.#role ?? "assistant"],
      ["content", content],
      ...fields,
      ...(toolCalls.length > 0 ? [["tool_calls", toolCalls]] : []),
      ...(this.#functionCall ? [["function_call", { name: this.#functionCall.name ?? null, arguments: this.#functionCall.arguments.join("") }]] : []),
    ]) as JsonObject;
    return {
      index: this.index,
      message,
      logprobs: this.#logprobs ? (Object.fromEntries(this.#logprobs) as JsonObject) : null,
      finish_reason: this.#finishReason,
    };
  }
}

/** One tool call from its deltas: `id`, `type` and the function's name as first sent, its arguments joined. */
class ToolCallAssembly {
  #id: string | undefined;
  #type: string | undefined;
  #name: string | undefined;
  readonly #arguments: string[] = [];

  constructor(readonly index: number) {}

  add(call: JsonObject): void {
    if (typeof call.id === "string" && call.id !== "") this.#id ??= call.id;
    if (typeof call.type === "string" && call.type !== "") this.#type ??= call.type;
    const fn = call.function;
    if (!isObject(fn)) return;
    if (typeof fn.name === "string" && fn.name !== "") this.#name ??= fn.name;
    if (typeof fn.arguments === "string") this.#arguments.push(fn.arguments);
  }

  result(): JsonObject {
    return { id: this.#id ?? null, type: this.#type ?? "function", function: { name: this.#name ?? null, arguments: this.#arguments.join("") } };
  }
}
