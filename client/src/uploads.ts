/**
 * The upload monitor's state, folded from the gateway's live events (dicom.association.*,
 * dicom.instance.*, dicom.study.stable). A pure reducer so it is tested without a browser.
 */

export interface Association {
  upload_id: string;
  calling_ae: string;
  remote: string;
  kind: string;
  started_at: number;
  stored: number;
  duplicates: number;
  failed: number;
  bytes: number;
  studies: string[];
  lastFailure: string | null;
  open: boolean;
  aborted: boolean;
  ended_at: number | null;
}

export interface CompletedStudy {
  study_instance_uid: string;
  received: number;
  at: number;
}

export interface UploadState {
  associations: Association[];
  completed: CompletedStudy[];
}

export const EMPTY_UPLOADS: UploadState = { associations: [], completed: [] };
const KEEP_CLOSED = 50;
const KEEP_COMPLETED = 100;

type Data = Record<string, unknown>;

const num = (v: unknown, fallback = 0): number => (typeof v === "number" && Number.isFinite(v) ? v : fallback);
const str = (v: unknown, fallback = ""): string => (typeof v === "string" ? v : fallback);

function blank(id: string, now: number): Association {
  return {
    upload_id: id,
    calling_ae: "",
    remote: "",
    kind: "",
    started_at: now,
    stored: 0,
    duplicates: 0,
    failed: 0,
    bytes: 0,
    studies: [],
    lastFailure: null,
    open: true,
    aborted: false,
    ended_at: null,
  };
}

function update(state: UploadState, id: string, now: number, change: (a: Association) => Association): UploadState {
  const index = state.associations.findIndex((a) => a.upload_id === id);
  const current = index >= 0 ? state.associations[index]! : blank(id, now);
  const next = change(current);
  const associations = index >= 0 ? state.associations.slice() : [next, ...state.associations];
  if (index >= 0) associations[index] = next;
  const open = associations.filter((a) => a.open);
  const closed = associations.filter((a) => !a.open).slice(0, KEEP_CLOSED);
  return { ...state, associations: [...open, ...closed] };
}

export function reduceUpload(state: UploadState, event: string, data: Data, now: number): UploadState {
  const id = str(data.upload_id);
  switch (event) {
    case "dicom.association.opened":
      return update(state, id, now, (a) => ({
        ...a,
        calling_ae: str(data.calling_ae, a.calling_ae),
        remote: str(data.remote, a.remote),
        kind: str(data.kind, a.kind),
        started_at: num(data.started_at, a.started_at),
      }));
    case "dicom.instance.stored":
      return update(state, id, now, (a) => ({
        ...a,
        stored: num(data.stored, a.stored),
        duplicates: num(data.duplicates, a.duplicates),
        failed: num(data.failed, a.failed),
        bytes: num(data.bytes, a.bytes),
        studies: a.studies.includes(str(data.study_instance_uid)) || !data.study_instance_uid
          ? a.studies
          : [...a.studies, str(data.study_instance_uid)],
      }));
    case "dicom.instance.failed":
      return update(state, id, now, (a) => ({
        ...a,
        failed: num(data.failed, a.failed + 1),
        lastFailure: str(data.reason, "rejected"),
      }));
    case "dicom.association.closed":
      return update(state, id, now, (a) => ({
        ...a,
        stored: num(data.stored, a.stored),
        duplicates: num(data.duplicates, a.duplicates),
        failed: num(data.failed, a.failed),
        bytes: num(data.bytes, a.bytes),
        studies: Array.isArray(data.studies) ? data.studies.map((s) => str(s)) : a.studies,
        open: false,
        aborted: data.aborted === true,
        ended_at: a.started_at + num(data.seconds, now - a.started_at),
      }));
    case "dicom.study.stable": {
      const uid = str(data.study_instance_uid);
      if (!uid) return state;
      const done = { study_instance_uid: uid, received: num(data.received), at: now };
      const rest = state.completed.filter((c) => c.study_instance_uid !== uid);
      return { ...state, completed: [done, ...rest].slice(0, KEEP_COMPLETED) };
    }
    default:
      return state;
  }
}

/** Seeds the monitor from GET /api/uploads (recent associations, newest first). */
export function seedUploads(state: UploadState, docs: readonly Data[], now: number): UploadState {
  let next = state;
  for (const doc of [...docs].reverse()) {
    const id = str(doc.upload_id);
    if (!id || next.associations.some((a) => a.upload_id === id)) continue;
    const open = doc.state === "open";
    next = update(next, id, now, (a) => ({
      ...a,
      calling_ae: str(doc.calling_ae),
      remote: str(doc.remote),
      kind: str(doc.kind),
      started_at: num(doc.started_at, now),
      stored: num(doc.stored),
      duplicates: num(doc.duplicates),
      failed: num(doc.failed),
      bytes: num(doc.bytes),
      studies: Array.isArray(doc.studies) ? doc.studies.map((s) => str(s)) : [],
      open,
      aborted: doc.state === "aborted",
      ended_at: open ? null : num(doc.ended_at, now),
    }));
  }
  return next;
}

/** Images per second over the association's life so far. */
export function rate(a: Association, now: number): number {
  const seconds = (a.ended_at ?? now) - a.started_at;
  return seconds > 0 ? a.stored / seconds : 0;
}

export function formatBytes(bytes: number): string {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}
