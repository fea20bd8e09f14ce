import { inspect } from "node:util";
import { describe, expect, it } from "vitest";
import { API_KEY_PATTERN, digestSecret, digestsEqual, keyDigests, matchDigest, newApiKey, newKeyId, parseApiKey, secretDigest } from "../../src/auth/api-keys.js";

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

  it("accepts a secret's last character exactly when the secret is canonical base64url of 32 bytes", () => {
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (const last of alphabet) {
      const secret = good.slice(21, -1) + last;
      const canonical = Buffer.from(secret, "base64url").toString("base64url") === secret;
      expect(parseApiKey(`${good.slice(0, 21)}${secret}`).ok, `last character ${last}`).toBe(canonical);
    }
  });

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
    const digest = secretDigest("s");
    expect(digest.toString("hex")).toBe(digestSecret("s"));
    expect(digestsEqual(digest, secretDigest("s"))).toBe(true);
    expect(digestsEqual(digest, secretDigest("t"))).toBe(false);
    expect(digestsEqual(digest, digest.subarray(0, 31))).toBe(false);
    expect(digestsEqual(Buffer.alloc(0), Buffer.alloc(0))).toBe(false);
    // A stored digest that is not hex decodes to nothing, which matches nothing.
    expect(digestsEqual(digest, keyDigests({ digest: "not hex", previousDigest: null, previousValidUntil: null }).digest)).toBe(false);
  });

  it("matches the current secret, and the previous one only within its grace", () => {
    const [current, previous] = [digestSecret("new"), digestSecret("old")];
    const until = new Date("2030-01-01T12:00:00Z");
    const key = keyDigests({ digest: current, previousDigest: previous, previousValidUntil: until });
    const [presentedCurrent, presentedPrevious] = [secretDigest("new"), secretDigest("old")];
    expect(matchDigest(key, presentedCurrent, new Date("2031-01-01"))).toBe("current");
    expect(matchDigest(key, presentedPrevious, new Date("2030-01-01T11:59:59Z"))).toBe("previous");
    expect(matchDigest(key, presentedPrevious, until)).toBeUndefined();
    expect(matchDigest(keyDigests({ digest: current, previousDigest: null, previousValidUntil: null }), presentedPrevious, new Date(0))).toBeUndefined();
  });
});
