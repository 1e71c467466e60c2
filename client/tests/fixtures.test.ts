import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CATALOG_DIR } from "../scripts/gen-protocol.mjs";
import type { AlertsAlert, PresenceControlRequest, RoomsOp } from "../src/protocol/generated";
import { ReportSync } from "../src/report";
import { addRequest, applyOp, fromSnapshot, upsertAlert } from "../src/room";

/** The shared round-trip fixtures (first valid example of each), fed through the client code. */
const dir = join(CATALOG_DIR, "fixtures");
const load = (name: string): unknown => {
  const fixture = JSON.parse(readFileSync(join(dir, `${name}.json`), "utf8")) as { valid: unknown[] };
  return fixture.valid[0];
};
const hasRoomFixtures = existsSync(dir) && readdirSync(dir).some((f) => f.startsWith("rooms."));

describe.runIf(hasRoomFixtures)("room fixtures through the client", () => {
  it("the next op applies; a later one is a gap", () => {
    const op = load("rooms.op") as RoomsOp;
    const base = fromSnapshot({
      study_uid: op.study_uid, seq: op.seq - 1, participants: [], presenter: null, annotations: [],
      chat: [], report: { state_vector: "", updates: 0 }, alerts: [],
    });
    const applied = applyOp(base, op);
    expect(applied.gap).toBe(false);
    expect(applied.state.seq).toBe(op.seq);
    if (op.type === "annotation.created") expect(applied.state.annotations).toHaveLength(1);
    expect(applyOp(base, { ...op, seq: op.seq + 1 }).gap).toBe(true);
  });

  it("a request for control reaches the presenter it was made to", () => {
    const request = load("rooms.follow.requested") as PresenceControlRequest;
    const base = fromSnapshot({
      study_uid: request.study_uid, seq: 3, participants: [], presenter: request.to, annotations: [],
      chat: [], report: { state_vector: "", updates: 0 }, alerts: [],
    });
    expect(addRequest(base, request).requests).toEqual([request]);
    expect(addRequest({ ...base, presenter: request.from }, request).requests).toEqual([]);
  });

  it("an alert is kept by id and version", () => {
    const alert = load("rooms.alert") as AlertsAlert;
    const list = upsertAlert([], alert);
    expect(upsertAlert(list, { ...alert, version: alert.version - 1 })).toBe(list);
  });

  it("the server-side sync step 1 is answered with a step 2", () => {
    const sync = load("rooms.report.sync") as { message: string };
    const client = new ReportSync(() => undefined);
    const reply = client.receive(sync.message);
    expect(reply).not.toBeNull();
    expect(Array.from(atob(reply!).slice(0, 2), (c) => c.charCodeAt(0))).toEqual([0, 1]);
  });
});
