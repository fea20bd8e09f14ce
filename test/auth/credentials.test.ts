import { describe, expect, it } from "vitest";
import { MAX_AUTHORIZATION_LENGTH, credentialFormat, parseAuthorization } from "../../src/auth/credentials.js";
import { refusalError, wwwAuthenticate } from "../../src/auth/verifier.js";

const key = "ptk_k3y1d_S3cr3tS3cr3tS3cr3tS3cr3tS3cr3t";
const jwt = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJlc2lnbmF0dXJl";

describe("parseAuthorization", () => {
  it.each([
    ["Bearer with an API key", `Bearer ${key}`, "bearer", "api-key", key],
    ["Token with an API key (Smarter/knox)", `Token ${key}`, "token", "api-key", key],
    ["Bearer with a JWT", `Bearer ${jwt}`, "bearer", "id-token", jwt],
    ["the scheme in lower case", `bearer ${jwt}`, "bearer", "id-token", jwt],
    ["the scheme in upper case", `BEARER ${key}`, "bearer", "api-key", key],
    ["the scheme in mixed case", `ToKeN ${key}`, "token", "api-key", key],
    ["several spaces after the scheme (RFC 7235's 1*SP)", `Bearer   ${key}`, "bearer", "api-key", key],
    ["spaces and tabs around the value", ` \tBearer ${key}\t `, "bearer", "api-key", key],
  ])("reads %s", (_, header, scheme, format, value) => {
    expect(parseAuthorization(header)).toEqual({ credential: { scheme, format, value } });
  });

  it("reads a header of the longest length", () => {
    const longest = `Bearer ptk_${"a".repeat(MAX_AUTHORIZATION_LENGTH - "Bearer ptk_".length)}`;
    expect(longest).toHaveLength(MAX_AUTHORIZATION_LENGTH);
    expect(parseAuthorization(longest).credential?.format).toBe("api-key");
  });

  it.each([
    ["no header (null)", null, "no authorization header"],
    ["no header (undefined)", undefined, "no authorization header"],
    ["an empty header", "", "the authorization header is empty"],
    ["a header of blanks", " \t ", "the authorization header is empty"],
  ])("calls %s missing", (_, header, detail) => {
    expect(parseAuthorization(header)).toEqual({ refusal: { reason: "missing", detail } });
  });

  // Each case hides a secret-looking part: none of it may come back in the refusal.
  it.each([
    ["a bare secret without scheme", "sk-proj-S3cr3tS3cr3tS3cr3t", "has no scheme"],
    ["a scheme without credential", "Bearer", "not followed by a credential"],
    ["a scheme and spaces only", "Token    ", "not followed by a credential"],
    ["another scheme", "Basic QWxhZGRpbjpvcGVuU2VzYW1lU2VjcmV0", "scheme is not supported"],
    ["a secret in the scheme's place", "S3cr3tS3cr3tS3cr3t ptk_k3y1d_x", "scheme is not supported"],
    ["two credentials", `Bearer ${key} S3cr3tS3cr3tS3cr3t`, "more than one credential"],
    ["two authorization headers, joined", `Bearer ${key}, Bearer ${jwt}`, "more than one credential"],
    ["a tab inside", `Bearer\t${key}`, "other than printable ASCII"],
    ["a non-ASCII character", `Bearer ${key}é`, "other than printable ASCII"],
    ["a control character", `Bearer ${key}\u0000`, "other than printable ASCII"],
    ["a header over the limit", `Bearer ptk_${"S".repeat(MAX_AUTHORIZATION_LENGTH)}`, `longer than ${MAX_AUTHORIZATION_LENGTH} characters`],
    ["a value that is neither a key nor a JWT", "Bearer S3cr3tS3cr3tS3cr3t", "neither an API key (ptk_…) nor a Google ID token"],
    ["the key prefix alone", "Bearer ptk_", "neither an API key"],
    ["a key prefix in another case", "Bearer PTK_S3cr3tS3cr3tS3cr3t", "neither an API key"],
    ["an unsigned JWT (empty signature)", "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiIxMjMifQ.", "neither an API key"],
    ["four dot-separated parts", `Bearer ${jwt}.S3cr3tS3cr3tS3cr3t`, "neither an API key"],
    ["a part that is not base64url", "Bearer eyJhbGci+S3cr3t.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl", "neither an API key"],
    ["a JWT under the Token scheme", `Token ${jwt}`, "the Token scheme carries an API key"],
  ])("calls %s malformed, echoing none of it", (_, header, detail) => {
    const { refusal } = parseAuthorization(header);
    expect(refusal?.reason).toBe("malformed");
    expect(refusal?.detail).toContain(detail);
    const echoed = [refusal!.detail, refusalError(refusal!).message, wwwAuthenticate(refusal!)].join("\n");
    for (const part of header.split(/[ .,_\t]/).filter((piece) => piece.length >= 8)) expect(echoed).not.toContain(part);
  });

  it("remembers a header that parsed to an API key, and parses every other header afresh", () => {
    const header = `Bearer ${key}`;
    const first = parseAuthorization(header);
    // The same text (a new string, as each request brings) gives the remembered result.
    expect(parseAuthorization(`Bearer ${key.slice(0, -1)}${key.at(-1)}`)).toBe(first);
    // A header differing by a character is its own; a JWT and a refusal are never remembered.
    expect(parseAuthorization(`Bearer ${key}x`).credential?.value).toBe(`${key}x`);
    expect(parseAuthorization(`Bearer ${jwt}`)).not.toBe(parseAuthorization(`Bearer ${jwt}`));
    expect(parseAuthorization("Bearer S3cr3tS3cr3tS3cr3t")).not.toBe(parseAuthorization("Bearer S3cr3tS3cr3tS3cr3t"));
    // Past its bound the memory starts afresh, and parsing still gives the same answers.
    for (let i = 0; i <= 10_000; i++) parseAuthorization(`Bearer ptk_k3y1d_${i}`);
    expect(parseAuthorization(header)).not.toBe(first);
    expect(parseAuthorization(header)).toEqual(first);
  });
});

describe("credentialFormat", () => {
  it.each([
    [key, "api-key"],
    [jwt, "id-token"],
    ["ptk_", undefined],
    ["a.b.c", "id-token"],
    ["a.b", undefined],
    ["", undefined],
  ])("routes %j to %s", (value, format) => {
    expect(credentialFormat(value)).toBe(format);
  });
});
