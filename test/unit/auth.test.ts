import { createHash, createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { type AuthOptions, createAuthenticator } from "../../src/api/auth.js";
import { UnauthenticatedError } from "../../src/engine/index.js";

const headers = (h: Record<string, string>) => (name: string) => h[name];
const secret = Buffer.from("test-secret");
const auth = (options: Omit<AuthOptions, "secret">) => createAuthenticator({ ...options, secret });
const as = (key: string) => headers({ "x-api-key": key });

describe("createAuthenticator", () => {
  it("accepts X-API-Key and authorization: Bearer for the same owner", () => {
    const a = auth({ apiKeys: ["k1", "k2"] });
    const one = a.authenticate(as("k1"));
    expect(a.authenticate(headers({ authorization: "Bearer k1" }))).toEqual(one);
    expect(one.owner).toMatch(/^[0-9a-f]{24}$/);
    expect(a.authenticate(as("k2")).owner).not.toBe(one.owner);
  });

  it("derives the owner id with a keyed hash, so it depends on the server's secret", () => {
    const owner = auth({ apiKeys: ["k1"] }).authenticate(as("k1")).owner;
    expect(owner).toBe(createHmac("sha256", secret).update("k1").digest("hex").slice(0, 24));
    expect(owner).not.toBe(createHash("sha256").update("k1").digest("hex").slice(0, 24));
    const other = createAuthenticator({ apiKeys: ["k1"], secret: Buffer.from("another") });
    expect(other.authenticate(as("k1")).owner).not.toBe(owner);
  });

  it("refuses missing, unknown and malformed keys", () => {
    const a = auth({ apiKeys: ["k1"] });
    expect(() => a.authenticate(headers({}))).toThrow(UnauthenticatedError);
    expect(() => a.authenticate(as("k9"))).toThrow(/unknown API key/);
    expect(() => a.authenticate(headers({ authorization: "Basic k1" }))).toThrow(
      UnauthenticatedError,
    );
  });

  it("makes the only key of a single-tenant server its admin", () => {
    const a = auth({ apiKeys: ["k1"] });
    expect(a.adminMode).toBe("single-key");
    expect(a.authenticate(as("k1")).admin).toBe(true);
  });

  it("makes nobody an admin when several keys are set and no ADMIN_API_KEYS", () => {
    const a = auth({ apiKeys: ["k1", "k2"] });
    expect(a.adminMode).toBe("none");
    for (const key of ["k1", "k2"]) {
      const principal = a.authenticate(as(key));
      expect(principal.admin).toBe(false);
      expect(principal.adminNote).toMatch(/no key is an admin.*ADMIN_API_KEYS/);
    }
  });

  it("makes exactly the keys in ADMIN_API_KEYS admins, and accepts them", () => {
    const a = auth({ apiKeys: ["k1"], adminApiKeys: ["root"] });
    expect(a.adminMode).toBe("listed");
    expect(a.keyCount).toBe(2);
    expect(a.authenticate(as("k1"))).toMatchObject({
      admin: false,
      adminNote: "only keys listed in ADMIN_API_KEYS are admins",
    });
    expect(a.authenticate(as("root")).admin).toBe(true);
  });

  it("lets everyone in as one admin when keys are not required", () => {
    const a = auth({ requireApiKey: false });
    expect(a.adminMode).toBe("anonymous");
    expect(a.authenticate(headers({}))).toEqual({ owner: "anonymous", admin: true });
  });
});
