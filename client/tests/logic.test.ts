import { describe, expect, it } from "vitest";
import { POINTS_NEEDED, measurementLines } from "../src/measurements";
import type { RoomsOp } from "../src/protocol/generated";
import { ReportSync } from "../src/report";
import { addRequest, applyEarly, applyOp, applyPresence, applyReplay, dropRequest, fromSnapshot, mentionsIn, people, setAnswer } from "../src/room";
import { EMPTY_UPLOADS, formatBytes, rate, reduceUpload } from "../src/uploads";
import { NO_FILTERS, matches, mergeStudy, sortStudies, worklistQuery, type Study } from "../src/worklist";

const study = (over: Partial<Study>): Study => ({
  id: "s1",
  facility: "main",
  accession_number: "A1",
  study_instance_uid: "1.2.3",
  patient_id: "P1",
  patient_name: "DOE^JANE",
  priority: "routine",
  status: "unread",
  status_at: "2026-11-27T10:00:00Z",
  created_at: "2026-11-27T10:00:00Z",
  overdue: false,
  assigned_to: null,
  claimed_by: null,
  images: 0,
  open_alerts: 0,
  version: 1,
  ...over,
});

describe("worklist", () => {
  it("keeps the newest version of a row and adds new rows", () => {
    const rows = [study({ version: 2, status: "reading" })];
    expect(mergeStudy(rows, study({ version: 1 }))).toBe(rows);
    expect(mergeStudy(rows, study({ version: 3, status: "final" }))[0]!.status).toBe("final");
    expect(mergeStudy(rows, study({ id: "s2" }))).toHaveLength(2);
  });

  it("puts STAT first, then newest", () => {
    const rows = sortStudies([
      study({ id: "a", created_at: "2026-11-27T09:00:00Z" }),
      study({ id: "b", priority: "stat", created_at: "2026-11-27T08:00:00Z" }),
      study({ id: "c", created_at: "2026-11-27T11:00:00Z" }),
    ]);
    expect(rows.map((r) => r.id)).toEqual(["b", "c", "a"]);
  });

  it("filters live rows like the server filters the page", () => {
    const row = study({ modality: "CT", assigned_to: "ada" });
    expect(matches(row, { ...NO_FILTERS, q: "doe" }, "ada")).toBe(true);
    expect(matches(row, { ...NO_FILTERS, q: "smith" }, "ada")).toBe(false);
    expect(matches(row, { ...NO_FILTERS, mine: true }, "bob")).toBe(false);
    expect(matches(row, { ...NO_FILTERS, stat: true }, "ada")).toBe(false);
    expect(matches(row, { ...NO_FILTERS, modality: "MR" }, "ada")).toBe(false);
    expect(matches(row, { ...NO_FILTERS, since: "2026-11-28" }, "ada")).toBe(false);
    expect(worklistQuery({ ...NO_FILTERS, stat: true, q: " x " })).toMatchObject({ stat: true, q: "x" });
  });
});

describe("upload monitor", () => {
  it("follows an association from open to close and lists completed studies", () => {
    let s = reduceUpload(EMPTY_UPLOADS, "dicom.association.opened", { upload_id: "u", calling_ae: "CT1", remote: "10.0.0.5", kind: "c-store", started_at: 100 }, 100);
    s = reduceUpload(s, "dicom.instance.stored", { upload_id: "u", study_instance_uid: "1.2", stored: 1, failed: 0, bytes: 2048, duplicates: 0 }, 101);
    s = reduceUpload(s, "dicom.instance.failed", { upload_id: "u", reason: "no pixel data", failed: 1 }, 102);
    expect(s.associations[0]).toMatchObject({ calling_ae: "CT1", stored: 1, failed: 1, bytes: 2048, open: true, lastFailure: "no pixel data" });
    expect(rate(s.associations[0]!, 102)).toBeCloseTo(0.5);
    s = reduceUpload(s, "dicom.association.closed", { upload_id: "u", stored: 10, failed: 1, bytes: 20480, duplicates: 0, aborted: false, studies: ["1.2"], seconds: 4 }, 104);
    expect(s.associations[0]).toMatchObject({ open: false, stored: 10, ended_at: 104 });
    s = reduceUpload(s, "dicom.study.stable", { study_instance_uid: "1.2", received: 10 }, 110);
    expect(s.completed).toEqual([{ study_instance_uid: "1.2", received: 10, at: 110 }]);
    expect(formatBytes(20480)).toBe("20.0 KB");
  });
});

describe("measurement labels", () => {
  it("names values and units from the server's keys", () => {
    expect(measurementLines({ length_mm: 42.123 })).toEqual(["Length 42.12 mm"]);
    expect(measurementLines({ angle_deg: 31.5 })).toEqual(["Angle 31.50°"]);
    expect(measurementLines({ area_mm2: 120.5, mean: 40.25, unit: "HU" })).toEqual(["Area 120.5 mm²", "Mean 40.25 HU"]);
    expect(measurementLines({ length: { value: 3, unit: "mm" } })).toEqual(["Length 3.00 mm"]);
    // The rooms' measurer shape: one shared unit, or value_unit/area_unit for ROI statistics.
    expect(measurementLines({ length: 32.789, unit: "mm", caveat: null })).toEqual(["Length 32.79 mm"]);
    expect(measurementLines({ angle: 12, unit: "deg" })).toEqual(["Angle 12.00°"]);
    expect(measurementLines({ mean: 40.25, area: 120.5, area_unit: "mm²", value_unit: "HU" })).toEqual([
      "Mean 40.25 HU",
      "Area 120.5 mm²",
    ]);
    expect(measurementLines(undefined)).toEqual([]);
  });

  it("labels a probe's value in modality units, and a colour pixel's samples", () => {
    const probe = { value: 1000, value_unit: "HU", pixel: [64, 64], patient_position: [32, 32, 2] };
    expect(measurementLines(probe)).toEqual(["Value 1000.0 HU"]);
    expect(measurementLines({ value: -3.5, value_unit: "HU", pixel: [0, 0], patient_position: null })).toEqual(["Value -3.50 HU"]);
    expect(measurementLines({ value: [255, 12, 0], value_unit: "RGB", pixel: [1, 2] })).toEqual(["Value (255.0, 12.00, 0.000) RGB"]);
  });

  it("a probe takes one point, the other tools theirs", () => {
    expect(POINTS_NEEDED.probe).toBe(1);
    expect(POINTS_NEEDED.length).toBe(2);
    expect(POINTS_NEEDED.cobb).toBe(4);
  });
});

const actor = { user_id: "u1", username: "ada" };
const op = (seq: number, type: RoomsOp["type"], data: Record<string, unknown>): RoomsOp => ({
  study_uid: "1.2.3", seq, type, actor, at: seq, data,
});
const annotation = (version: number, deleted = false) => ({
  id: "a".repeat(32), study_uid: "1.2.3", kind: "length" as const, instance_uid: "1.2.3.4", frame: 0,
  points: [[0, 0], [3, 4]], author: actor, version, deleted,
  measurement: { status: "measured" as const, values: { length_mm: 5 } },
});

describe("room state", () => {
  const base = fromSnapshot({
    study_uid: "1.2.3", seq: 4, participants: [], presenter: null, annotations: [], chat: [],
    report: { state_vector: "", updates: 0 }, alerts: [],
  });

  it("applies ops in order, ignores duplicates and reports gaps", () => {
    const one = applyOp(base, op(5, "annotation.created", { annotation: annotation(1) }));
    expect(one.state.annotations).toHaveLength(1);
    expect(applyOp(one.state, op(5, "annotation.created", { annotation: annotation(1) })).state).toBe(one.state);
    expect(applyOp(one.state, op(7, "chat.message", {})).gap).toBe(true);
    const deleted = applyOp(one.state, op(6, "annotation.deleted", { annotation: annotation(2, true) }));
    expect(deleted.state.annotations).toHaveLength(0);
  });

  it("keeps requests for control made to this presenter until the presenter changes", () => {
    const presenting = applyOp(base, op(5, "presenter.changed", { presenter: actor })).state;
    const bob = { user_id: "u2", username: "bob" };
    const request = { id: "r".repeat(32), study_uid: "1.2.3", from: bob, to: actor, at: 1 };
    let s = addRequest(presenting, request);
    expect(addRequest(s, request).requests).toHaveLength(1); // asked twice: one request
    expect(addRequest(s, { ...request, id: "q".repeat(32), to: bob }).requests).toHaveLength(1); // not to me
    expect(addRequest(s, { ...request, id: "p".repeat(32), study_uid: "9.9" })).toBe(s);
    expect(dropRequest(s, request.id).requests).toHaveLength(0);
    s = applyOp(s, op(6, "presenter.changed", { presenter: bob })).state;
    expect(s.requests).toEqual([]);
    const answer = { study_uid: "1.2.3", request_id: request.id, granted: false, by: actor };
    expect(setAnswer(s, answer).answer).toEqual(answer);
    expect(setAnswer(s, { ...answer, study_uid: "9.9" })).toBe(s);
  });

  it("applies a replay in seq order and steps over a hole the log will never fill", () => {
    const msg = (id: string, seq: number) => op(seq, "chat.message", { message: { id, conversation: "c", author: actor, text: id, mentions: [], ref: null, at: seq, deleted: false } });
    const state = applyReplay(base, [msg("b", 6), msg("a", 5), msg("d", 8)]);
    expect(state.seq).toBe(8);
    expect(state.chat.map((m) => m.text)).toEqual(["a", "b", "d"]);
    expect(applyReplay(state, [msg("a", 5)])).toBe(state);
  });

  it("applies the ops that came before the join answer over its snapshot", () => {
    // The snapshot is at seq 4: op 4 is in it already, op 5 (a colleague's measurement stored
    // while the snapshot was read) is not and must show.
    const early = [op(5, "annotation.created", { annotation: annotation(1) }), op(4, "chat.message", {})];
    const settled = applyEarly(base, early);
    expect(settled.gap).toBe(false);
    expect(settled.state.seq).toBe(5);
    expect(settled.state.annotations.map((a) => a.version)).toEqual([1]);
    expect(settled.state.chat).toEqual([]);
    // An op further ahead than the next seq is a gap to fill with room.sync.
    expect(applyEarly(base, [op(6, "annotation.created", { annotation: annotation(1) })]).gap).toBe(true);
    expect(applyEarly(base, [])).toEqual({ state: base, gap: false });
  });

  it("merges presence and collapses tabs of one user", () => {
    const p = (sid: string, user_id: string) => ({ sid, user_id, username: user_id, display_name: user_id, role: "radiologist" as const, colour: "#ff0000", viewport: null, following: false });
    let s = applyPresence(base, [p("1", "ada"), p("2", "ada"), p("3", "bob")], []);
    expect(people(s.participants).map((x) => x.user_id)).toEqual(["ada", "bob"]);
    s = applyPresence(s, [], ["3"]);
    expect(s.participants.map((x) => x.sid)).toEqual(["1", "2"]);
  });

  it("finds @mentions", () => {
    expect(mentionsIn("@bob look here, cc @carol.x and mail a@b")).toEqual(["bob", "carol.x"]);
  });
});

describe("report sync", () => {
  it("two clients converge through a relay that only forwards messages", () => {
    const queues: Array<[number, string]> = [];
    const a: ReportSync = new ReportSync((m) => queues.push([0, m]));
    const b: ReportSync = new ReportSync((m) => queues.push([1, m]));
    const peers = [a, b];
    const pump = () => {
      for (let i = 0; i < 100 && queues.length; i += 1) {
        const [from, message] = queues.shift()!;
        const other = peers[1 - from]!;
        const reply = other.receive(message);
        if (reply) queues.push([1 - from, reply]);
      }
    };
    a.setText("Findings: none.");
    b.setText("Impression: normal.");
    queues.push([0, a.hello()], [1, b.hello()]);
    pump();
    a.setText(a.text.toString() + " Signed.");
    pump();
    expect(a.text.toString()).toBe(b.text.toString());
    expect(a.text.toString()).toContain("Signed.");
  });
});

describe("upload monitor seeding", () => {
  it("adds recent associations from the API without duplicating live ones", async () => {
    const { seedUploads } = await import("../src/uploads");
    let s = reduceUpload(EMPTY_UPLOADS, "dicom.association.opened", { upload_id: "live", calling_ae: "MR1", started_at: 50 }, 50);
    s = seedUploads(s, [
      { upload_id: "live", state: "open", calling_ae: "MR1", started_at: 50 },
      { upload_id: "old", state: "closed", calling_ae: "CT1", started_at: 10, ended_at: 20, stored: 4, bytes: 10, studies: ["1.2"] },
    ], 60);
    expect(s.associations.map((a) => [a.upload_id, a.open])).toEqual([["live", true], ["old", false]]);
    expect(s.associations[1]).toMatchObject({ stored: 4, ended_at: 20, studies: ["1.2"] });
  });
});
