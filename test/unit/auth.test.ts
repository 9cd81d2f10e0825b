import { describe, expect, it } from "vitest";
import { createAuthenticator } from "../../src/api/auth.js";
import { UnauthenticatedError } from "../../src/engine/errors.js";

const headers = (h: Record<string, string>) => (name: string) => h[name];

describe("createAuthenticator", () => {
  it("accepts X-API-Key and authorization: Bearer for the same owner", () => {
    const auth = createAuthenticator({ apiKeys: ["k1", "k2"] });
    const a = auth.authenticate(headers({ "x-api-key": "k1" }));
    const b = auth.authenticate(headers({ authorization: "Bearer k1" }));
    expect(a).toEqual(b);
    expect(a.owner).toMatch(/^[0-9a-f]{24}$/);
    expect(a.owner).not.toContain("k1");
    expect(auth.authenticate(headers({ "x-api-key": "k2" })).owner).not.toBe(a.owner);
  });

  it("refuses missing, unknown and malformed keys", () => {
    const auth = createAuthenticator({ apiKeys: ["k1"] });
    expect(() => auth.authenticate(headers({}))).toThrow(UnauthenticatedError);
    expect(() => auth.authenticate(headers({ "x-api-key": "k9" }))).toThrow(/unknown API key/);
    expect(() => auth.authenticate(headers({ authorization: "Basic k1" }))).toThrow(
      UnauthenticatedError,
    );
  });

  it("makes every key an admin when ADMIN_API_KEYS is empty, only those keys otherwise", () => {
    expect(
      createAuthenticator({ apiKeys: ["k1"] }).authenticate(headers({ "x-api-key": "k1" })).admin,
    ).toBe(true);
    const auth = createAuthenticator({ apiKeys: ["k1"], adminApiKeys: ["root"] });
    expect(auth.authenticate(headers({ "x-api-key": "k1" })).admin).toBe(false);
    expect(auth.authenticate(headers({ "x-api-key": "root" })).admin).toBe(true);
  });

  it("generates a key when keys are required and none is given", () => {
    const auth = createAuthenticator({});
    expect(auth.generatedKey).toMatch(/^bp_[A-Za-z0-9_-]{32}$/);
    expect(auth.authenticate(headers({ "x-api-key": auth.generatedKey as string })).admin).toBe(
      true,
    );
  });

  it("lets everyone in as one admin when keys are not required", () => {
    const auth = createAuthenticator({ requireApiKey: false });
    expect(auth.generatedKey).toBeUndefined();
    expect(auth.authenticate(headers({}))).toEqual({ owner: "anonymous", admin: true });
  });
});
