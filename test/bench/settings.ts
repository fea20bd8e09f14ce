// The benchmark's knobs, read once from the environment (documented in README.md), and the body
// every scenario sends.

/** How long `--soak` runs by default, in minutes; a shorter run is reported as a trial. */
export const SOAK_DEFAULT_MINUTES = 10;

/** Every knob, read once from the environment. */
export function readSettings() {
  const number = (name: string, fallback: number): number => {
    const value = Number(process.env[name]);
    return process.env[name] !== undefined && Number.isFinite(value) && value >= 0 ? value : fallback;
  };
  const all = ["rest", "grpc", "connect", "sse", "streams", "cluster"];
  const only = (process.env.BENCH_ONLY ?? "").split(",").map((item) => item.trim()).filter(Boolean);
  const unknown = only.filter((item) => !all.includes(item));
  if (unknown.length) throw new Error(`BENCH_ONLY: unknown scenario(s) ${unknown.join(", ")}; use ${all.join(",")}`);
  const streamHoldS = number("BENCH_STREAM_HOLD_S", 5);
  return {
    durationS: number("BENCH_DURATION", 5),
    warmupS: number("BENCH_WARMUP", 2),
    rounds: Math.max(1, Math.round(number("BENCH_ROUNDS", 3))),
    connections: Math.max(1, Math.round(number("BENCH_CONNECTIONS", 32))),
    grpcChannels: Math.max(1, Math.round(number("BENCH_GRPC_CHANNELS", 1))),
    providerLatencyMs: number("BENCH_PROVIDER_LATENCY_MS", 0),
    sseChunks: Math.max(1, Math.round(number("BENCH_SSE_CHUNKS", 20))),
    sseIntervalMs: number("BENCH_SSE_INTERVAL_MS", 5),
    sseSequential: Math.max(1, Math.round(number("BENCH_SSE_REQUESTS", 100))),
    sseConcurrentRequests: Math.max(1, Math.round(number("BENCH_SSE_CONCURRENT_REQUESTS", 320))),
    streams: Math.max(1, Math.round(number("BENCH_STREAMS", 1000))),
    streamIntervalMs: 200,
    streamChunks: Math.max(1, Math.round((streamHoldS * 1000) / 200)),
    streamRampMs: number("BENCH_STREAM_RAMP_MS", 2000),
    scenarios: new Set(only.length ? only : all),
    build: process.env.BENCH_SKIP_BUILD !== "1",
    gateway: process.env.BENCH_GATEWAY !== "0",
    /** Also measure the gateway with authentication, the journal and the signal sinks off; "0": not. */
    gatewayOff: process.env.BENCH_GATEWAY_OFF !== "0",
    gatewayStartTimeoutMs: number("BENCH_GATEWAY_TIMEOUT_S", 10) * 1000,
    /** YAML appended to the gateway's config, e.g. "upstream: { connectionsPerProvider: 1100 }". */
    /** An earlier latest.json to compare with; default the one this run replaces; "0": none. */
    compareWith: process.env.BENCH_COMPARE === "0" ? "" : process.env.BENCH_COMPARE,
    gatewayYaml: process.env.BENCH_GATEWAY_YAML ? `${process.env.BENCH_GATEWAY_YAML}\n` : "",
    /** `--soak`: how long the soak runs, in minutes. */
    soakMinutes: Math.max(0.25, number("BENCH_SOAK_MINUTES", SOAK_DEFAULT_MINUTES)),
    /** `--soak`: calls per second in all, the mix scaled to it. */
    soakRatePerS: Math.max(10, number("BENCH_SOAK_RATE", 250)),
    /** `--soak`: only these kinds of call (names as in soak-mix.ts), to reproduce a finding; default all. */
    soakOnly: (process.env.BENCH_SOAK_ONLY ?? "").split(",").map((item) => item.trim()).filter(Boolean),
  };
}
export type Settings = ReturnType<typeof readSettings>;

/** A ~300-byte chat-completion request. */
export const chatBody = {
  model: "gpt-4o-mini",
  messages: [
    { role: "system", content: "You are a concise assistant." },
    { role: "user", content: "Summarize in one sentence why an LLM gateway should add as little latency as possible to each chat completion it forwards." },
  ],
  temperature: 0.2,
  max_tokens: 64,
  user: "bench",
};
