import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newApiKey } from "../../src/auth/api-keys.js";
import { openStore } from "../../src/store/open.js";
import type { Store } from "../../src/store/store.js";
import { googleClaims, jwks, newSigningKey, signIdToken } from "../auth/support/id-tokens.js";
import { callStream, createProtocolClient, PROTOCOLS, STREAM_PROTOCOLS } from "../support/clients.js";
import { chunks, completion, json, sse, startFakeProvider, type FakeProvider } from "../support/fake-provider.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";

// SPEC section 5's table on every protocol, with real clients against a gateway that
// authenticates: API keys from its SQLite store, Google ID tokens verified with certificates
// from a file. A refused call never reaches the provider, and no secret shows anywhere.
let provider: FakeProvider;
let gateway: TestGateway;
let store: Store;
const dir = mkdtempSync(join(tmpdir(), "passthrough-auth-"));
const AUDIENCE = "passthrough-test.apps.googleusercontent.com";
const signing = newSigningKey("test-kid");
const keys: Record<string, string> = {};
/** A key's id and secret (a secret may itself hold `_`). */
const partsOf = (key: string) => {
  const [, id, secret] = /^ptk_([a-z2-7]{16})_(.+)$/.exec(key)!;
  return { id, secret };
};

async function addKey(name: string, fields: { allowedProviders?: string[]; expiresAt?: Date } = {}): Promise<string> {
  const material = newApiKey();
  await store.createKey({ id: material.id, digest: material.digest, name, ...fields });
  return material.key.reveal();
}

beforeAll(async () => {
  provider = await startFakeProvider();
  provider.setDefault(json(200, completion("m")));
  writeFileSync(join(dir, "certs.json"), jwks([signing]));
  const url = `sqlite:${join(dir, "passthrough.db")}`;
  store = await openStore(url);
  keys.valid = await addKey("valid");
  keys.onlyOther = await addKey("only other", { allowedProviders: ["other"] });
  keys.expired = await addKey("expired", { expiresAt: new Date(Date.now() - 1000) });
  keys.revoked = await addKey("revoked");
  await store.revokeKey(partsOf(keys.revoked).id);
  const { id, secret } = partsOf(keys.valid);
  keys.unknown = `ptk_${"a".repeat(16)}_${secret}`;
  keys.wrongSecret = `ptk_${id}_${"B".repeat(42)}A`;
  gateway = await startTestGateway(
    {
      providers: [{ name: "local", baseUrl: provider.url }, { name: "other", baseUrl: provider.url }],
      database: { url },
      auth: { google: { audiences: [AUDIENCE], certsFile: join(dir, "certs.json") } },
    },
    {},
    undefined,
    { authenticate: true },
  );
});
afterAll(async () => {
  await gateway?.close();
  await store?.close();
  await provider?.close();
});

const bearer = (credential: string) => ({ authorization: `Bearer ${credential}` });
const rows: Array<{ name: string; headers: () => Record<string, string>; code: string; status: number; says?: string }> = [
  { name: "no credential", headers: () => ({}), code: "unauthenticated", status: 401, says: "missing" },
  { name: "a malformed header", headers: () => ({ authorization: "Basic dXNlcjpwYXNz" }), code: "unauthenticated", status: 401, says: "malformed" },
  { name: "a malformed key", headers: () => bearer("ptk_short_key"), code: "unauthenticated", status: 401, says: "malformed" },
  { name: "an unknown key", headers: () => bearer(keys.unknown), code: "unauthenticated", status: 401, says: "unknown" },
  { name: "a wrong secret", headers: () => bearer(keys.wrongSecret), code: "unauthenticated", status: 401, says: "unknown" },
  { name: "an expired key", headers: () => bearer(keys.expired), code: "unauthenticated", status: 401, says: "expired" },
  { name: "a revoked key", headers: () => bearer(keys.revoked), code: "unauthenticated", status: 401, says: "revoked" },
  { name: "an expired Google ID token", headers: () => bearer(signIdToken(signing, googleClaims(AUDIENCE, { exp: Math.floor(Date.now() / 1000) - 600 }))), code: "unauthenticated", status: 401, says: "expired" },
  { name: "a key for other providers only", headers: () => bearer(keys.onlyOther), code: "permission_denied", status: 403 },
];

describe.each(PROTOCOLS)("authentication over %s", (protocol) => {
  it.each(rows)("refuses $name: $code", async ({ headers, code, status, says }) => {
    provider.clear();
    const client = createProtocolClient(protocol, gateway.url, headers());
    const result = await client.unary("local", { model: "m" });
    client.close();
    expect(result.code).toBe(code);
    if (protocol === "rest") expect(result.status).toBe(status);
    if (says) {
      expect(result.message).toContain(says);
      expect(result.headers["www-authenticate"]).toMatch(/^Bearer realm="passthrough"/);
    }
    const sent = headers().authorization?.split(" ")[1];
    if (sent) expect(JSON.stringify(result)).not.toContain(sent);
    expect(provider.requests).toHaveLength(0);
  });

  it.each([
    { name: "an API key as Bearer", headers: () => bearer(keys.valid) },
    { name: "an API key as Token", headers: () => ({ authorization: `Token ${keys.valid}` }) },
    { name: "a Google ID token", headers: () => bearer(signIdToken(signing, googleClaims(AUDIENCE))) },
  ])("serves $name", async ({ headers }) => {
    const client = createProtocolClient(protocol, gateway.url, headers());
    const result = await client.unary("local", { model: "m" });
    client.close();
    expect(result.ok).toBe(true);
  });
});

describe.each(STREAM_PROTOCOLS)("authentication of PassthroughStream over %s", (protocol) => {
  it("refuses a call without a credential, and serves one with a key", async () => {
    provider.clear();
    const refused = await callStream(protocol, gateway.url, "local", { model: "m" });
    expect(refused.code).toBe("unauthenticated");
    expect(refused.message).toMatch(/^missing credential: /);
    expect(provider.requests).toHaveLength(0);
    provider.reply(sse(chunks(2)));
    const served = await callStream(protocol, gateway.url, "local", { model: "m" }, { headers: bearer(keys.valid) });
    expect(served.code).toBeUndefined();
    expect(served.chunks).toHaveLength(3);
  });

  it.each([
    { name: "an unknown key", key: () => keys.unknown, says: /^unknown credential: / },
    { name: "a revoked key", key: () => keys.revoked, says: /^revoked credential: / },
  ])("says which case it was for $name, as unary calls do", async ({ key, says }) => {
    const refused = await callStream(protocol, gateway.url, "local", { model: "m" }, { headers: bearer(key()) });
    expect(refused.code).toBe("unauthenticated");
    expect(refused.message).toMatch(says);
  });

  it("refuses a provider the key may not use, before the provider is called", async () => {
    provider.clear();
    const refused = await callStream(protocol, gateway.url, "local", { model: "m" }, { headers: bearer(keys.onlyOther) });
    expect(refused.code).toBe("permission_denied");
    expect(provider.requests).toHaveLength(0);
  });
});

describe("an anonymous caller", () => {
  it("announcing a 9 MiB body is refused before it sends a byte of it", async () => {
    provider.clear();
    const socket = connect(Number(new URL(gateway.url).port), "127.0.0.1");
    const answer = await new Promise<string>((resolve, reject) => {
      let text = "";
      const timer = setTimeout(() => reject(new Error(`no answer before the body: ${text}`)), 3000);
      socket.on("data", (chunk) => {
        text += chunk.toString("latin1");
        const end = text.indexOf("\r\n\r\n");
        const length = /content-length: (\d+)/i.exec(text);
        if (end >= 0 && length && text.length >= end + 4 + Number(length[1])) {
          clearTimeout(timer);
          resolve(text);
        }
      });
      socket.on("error", reject);
      socket.write(`POST /api/v1/prompts/passthrough/local/ HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: ${9 * 1024 * 1024}\r\n\r\n`);
    });
    socket.destroy();
    expect(answer).toMatch(/^HTTP\/1.1 401 /);
    expect(answer).toMatch(/www-authenticate: Bearer realm="passthrough"/i);
    expect(provider.requests).toHaveLength(0);
  });
});

describe("secrets", () => {
  it("appear in no database file, log line, metric or response", async () => {
    const client = createProtocolClient("rest", gateway.url, bearer(keys.valid));
    expect((await client.unary("local", { model: "m" })).ok).toBe(true);
    const metrics = await (await fetch(`${gateway.url}/metrics`)).text();
    const database = readdirSync(dir)
      .filter((name) => name.startsWith("passthrough.db"))
      .map((name) => readFileSync(join(dir, name)).toString("latin1"))
      .join("");
    for (const key of Object.values(keys)) {
      const { secret } = partsOf(key);
      for (const [where, text] of [["database", database], ["logs", gateway.logs.join("\n")], ["metrics", metrics]]) {
        expect(text.includes(secret), `${where} holds a secret`).toBe(false);
      }
    }
  });
});
