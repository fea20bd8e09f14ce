import { inspect } from "node:util";
import { describe, expect, it } from "vitest";
import { API_KEY_PATTERN, digestSecret, digestsEqual, matchDigest, newApiKey, newKeyId, parseApiKey } from "../../src/auth/api-keys.js";

describe("API key material", () => {
  it("makes ptk_<id>_<secret> keys: a 16-character base32 id and 256 random bits of base64url", () => {
    const material = newApiKey();
    const key = material.key.reveal();
    expect(key).toMatch(API_KEY_PATTERN);
    const [prefix, id, secret] = [key.slice(0, 3), key.slice(4, 20), key.slice(21)];
    expect(prefix).toBe("ptk");
    expect(id).toBe(material.id);
    expect(Buffer.from(secret, "base64url")).toHaveLength(32);
    expect(material.digest).toBe(digestSecret(secret));
    expect(material.digest).toMatch(/^[0-9a-f]{64}$/);
  });

  it("never prints the key by accident", () => {
    const material = newApiKey();
    const secret = material.key.reveal().slice(21);
    for (const shown of [String(material.key), JSON.stringify(material), inspect(material)]) expect(shown).not.toContain(secret);
  });

  it("makes unique ids and secrets", () => {
    const keys = Array.from({ length: 2000 }, () => newApiKey());
    expect(new Set(keys.map((k) => k.id)).size).toBe(2000);
    expect(new Set(keys.map((k) => k.digest)).size).toBe(2000);
    expect(new Set(Array.from({ length: 2000 }, newKeyId)).size).toBe(2000);
  });

  it("keeps the id when rotating", () => {
    const first = newApiKey();
    const next = newApiKey(first.id);
    expect(next.id).toBe(first.id);
    expect(next.digest).not.toBe(first.digest);
  });

  it("parses its own keys back to the id and the secret", () => {
    for (let i = 0; i < 200; i++) {
      const material = newApiKey();
      const parsed = parseApiKey(material.key.reveal());
      expect(parsed.ok).toBe(true);
      if (!parsed.ok) continue;
      expect(parsed.id).toBe(material.id);
      expect(digestSecret(parsed.secret)).toBe(material.digest);
    }
  });

  const good = newApiKey().key.reveal();
  it.each([
    ["empty", ""],
    ["another prefix", good.replace(/^ptk/, "sk")],
    ["upper-case prefix", good.replace(/^ptk/, "PTK")],
    ["a short secret", good.slice(0, -1)],
    ["a long secret", `${good}A`],
    ["an id with an underscore", `ptk_abcdefgh_jklmnop${good.slice(20)}`],
    ["an upper-case id", good.slice(0, 4) + good.slice(4, 20).toUpperCase() + good.slice(20)],
    ["a secret with padding", `${good.slice(0, -1)}=`],
    ["a non-canonical last character", good.slice(0, -1) + (good.endsWith("B") ? "C" : "B")],
    ["surrounding space", ` ${good} `],
    ["the scheme left on", `Bearer ${good}`],
    ["a huge string", "ptk_".padEnd(100_000, "a")],
  ])("calls %s malformed, without echoing it", (_, text) => {
    const parsed = parseApiKey(text);
    expect(parsed).toEqual({ ok: false, reason: "malformed" });
  });

  it("compares digests by value, whatever their length", () => {
    const digest = digestSecret("s");
    expect(digestsEqual(digest, digestSecret("s"))).toBe(true);
    expect(digestsEqual(digest, digestSecret("t"))).toBe(false);
    expect(digestsEqual(digest, digest.slice(0, 62))).toBe(false);
    expect(digestsEqual("", "")).toBe(false);
    expect(digestsEqual(digest, "not hex")).toBe(false);
  });

  it("matches the current secret, and the previous one only within its grace", () => {
    const [current, previous] = [digestSecret("new"), digestSecret("old")];
    const until = new Date("2030-01-01T12:00:00Z");
    const key = { digest: current, previousDigest: previous, previousValidUntil: until };
    expect(matchDigest(key, current, new Date("2031-01-01"))).toBe("current");
    expect(matchDigest(key, previous, new Date("2030-01-01T11:59:59Z"))).toBe("previous");
    expect(matchDigest(key, previous, until)).toBeUndefined();
    expect(matchDigest({ digest: current, previousDigest: null, previousValidUntil: null }, previous, new Date(0))).toBeUndefined();
  });
});
