import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { CATALOG_DIR, OUTPUT, generate } from "../scripts/gen-protocol.mjs";
import { errorOf } from "../src/protocol/errors";
import { ERROR_CODES, REQUESTS } from "../src/protocol/generated";

describe("generated protocol types", () => {
  it("match the catalog in shared/protocol (run `npm run gen` when this fails)", () => {
    expect(readFileSync(OUTPUT, "utf8")).toBe(generate(CATALOG_DIR));
  });

  it("list every error code of errors.json", () => {
    const errors = JSON.parse(readFileSync(join(CATALOG_DIR, "errors.json"), "utf8")).errors;
    expect([...ERROR_CODES].sort()).toEqual(Object.keys(errors).sort());
  });

  it("carry the HTTP routes of the catalog", () => {
    expect(REQUESTS["auth.login"]).toEqual({ method: "POST", path: "/api/auth/login" });
  });
});

describe("shared round-trip fixtures", () => {
  const dir = resolve(CATALOG_DIR, "fixtures");
  const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith(".json")) : [];
  const fixtures = files.map((f) => [f, JSON.parse(readFileSync(join(dir, f), "utf8"))] as const);

  it.each(fixtures.length ? fixtures : [["(none yet)", null] as const])(
    "%s survives a JSON round trip unchanged and errors parse as errors",
    (_name: string, fixture: unknown) => {
      if (fixture === null) return;
      expect(JSON.parse(JSON.stringify(fixture))).toEqual(fixture);
      const payload = (fixture as { payload?: unknown }).payload ?? fixture;
      const failure = errorOf(payload);
      if (failure) expect(ERROR_CODES).toContain(failure.code);
    },
  );
});
