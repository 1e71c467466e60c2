import type {
  AlertsAlert,
  AnnotationsAnnotation,
  ChatMessage,
  EventPayloads,
  PresenceControlRequest,
  RoomsActor,
  RoomsOp,
  RoomsParticipant,
  RoomsSnapshot,
} from "./protocol/generated";

/**
 * A study room as this client knows it: the snapshot from `room.join`, then every `room.op` in
 * sequence order. Ops carry the room's sequence number; a duplicate is ignored and a gap is
 * reported so the caller asks `room.sync` for what it missed (the transport does not guarantee
 * order between server processes; the sequence does).
 */
export interface RoomState {
  studyUid: string;
  seq: number;
  participants: RoomsParticipant[];
  presenter: RoomsActor | null;
  annotations: AnnotationsAnnotation[];
  chat: ChatMessage[];
  alerts: AlertsAlert[];
  /** Open requests for control made to this reader while presenting (cleared when the
   * presenter changes: the server drops them then too). */
  requests: PresenceControlRequest[];
  /** The presenter's answer to this reader's latest request for control. */
  answer: EventPayloads["follow.answered"] | null;
}

export type OpResult = { state: RoomState; gap: boolean };

const CHAT_TAIL = 500;

export function fromSnapshot(snapshot: RoomsSnapshot): RoomState {
  return {
    studyUid: snapshot.study_uid,
    seq: snapshot.seq,
    participants: snapshot.participants,
    presenter: snapshot.presenter,
    annotations: snapshot.annotations.filter((a) => !a.deleted),
    chat: [...snapshot.chat].sort((a, b) => a.at - b.at),
    alerts: snapshot.alerts,
    requests: [],
    answer: null,
  };
}

/** A request for control reached this presenter (again, when the requester asked twice). */
export function addRequest(state: RoomState, request: PresenceControlRequest): RoomState {
  if (request.study_uid !== state.studyUid || request.to.user_id !== state.presenter?.user_id) return state;
  return { ...state, requests: upsertBy(state.requests, request, (r) => r.id, () => true) };
}

/** The presenter answered (one of) this reader's requests; answered requests are closed. */
export function setAnswer(state: RoomState, answer: EventPayloads["follow.answered"]): RoomState {
  if (answer.study_uid !== state.studyUid) return state;
  return { ...state, answer };
}

export function dropRequest(state: RoomState, id: string): RoomState {
  return { ...state, requests: state.requests.filter((r) => r.id !== id) };
}

function inner<T>(data: Record<string, unknown>, key: string): T {
  return (key in data ? data[key] : data) as T;
}

export function upsertBy<T>(items: readonly T[], item: T, key: (t: T) => string, newer: (a: T, b: T) => boolean): T[] {
  const index = items.findIndex((x) => key(x) === key(item));
  if (index < 0) return [...items, item];
  if (!newer(item, items[index]!)) return items as T[];
  const next = items.slice();
  next[index] = item;
  return next;
}

export function upsertAnnotation(list: readonly AnnotationsAnnotation[], annotation: AnnotationsAnnotation): AnnotationsAnnotation[] {
  if (annotation.deleted) return list.filter((a) => a.id !== annotation.id);
  return upsertBy(list, annotation, (a) => a.id, (a, b) => a.version >= b.version);
}

export function upsertAlert(list: readonly AlertsAlert[], alert: AlertsAlert): AlertsAlert[] {
  return upsertBy(list, alert, (a) => a.id, (a, b) => a.version > b.version);
}

export function applyOp(state: RoomState, op: RoomsOp): OpResult {
  if (op.study_uid !== state.studyUid || op.seq <= state.seq) return { state, gap: false };
  if (op.seq > state.seq + 1) return { state, gap: true };
  const data = op.data as Record<string, unknown>;
  let next: RoomState = { ...state, seq: op.seq };
  switch (op.type) {
    case "annotation.created":
    case "annotation.updated":
    case "annotation.deleted": {
      const annotation = inner<AnnotationsAnnotation>(data, "annotation");
      const deleted = op.type === "annotation.deleted" ? { ...annotation, deleted: true } : annotation;
      next = { ...next, annotations: upsertAnnotation(next.annotations, deleted) };
      break;
    }
    case "chat.message":
    case "chat.edited":
    case "chat.deleted": {
      const message = inner<ChatMessage>(data, "message");
      const chat = upsertBy(next.chat, message, (m) => m.id, () => true);
      next = { ...next, chat: chat.slice(-CHAT_TAIL) };
      break;
    }
    case "presenter.changed":
      next = { ...next, presenter: (data.presenter as RoomsActor | null | undefined) ?? null, requests: [] };
      break;
    case "alert.changed":
      next = { ...next, alerts: upsertAlert(next.alerts, inner<AlertsAlert>(data, "alert")) };
      break;
  }
  return { state: next, gap: false };
}

/**
 * Applies the server's answer to `room.sync`: every stored op after the seq asked for. A seq
 * missing from it is a hole in the log (a number claimed whose write failed) that will never
 * come, so it is stepped over instead of being waited for.
 */
export function applyReplay(state: RoomState, ops: readonly RoomsOp[]): RoomState {
  let current = state;
  for (const op of [...ops].sort((a, b) => a.seq - b.seq)) {
    if (op.seq <= current.seq) continue;
    current = applyOp({ ...current, seq: op.seq - 1 }, op).state;
  }
  return current;
}

/**
 * Applies the ops that reached this tab before its first `room.join` answer. The server enters
 * the connection into the room before it reads the snapshot, so an op stored after the
 * snapshot's seq can arrive ahead of the answer; dropping it would leave its change missing until
 * some later op revealed the gap. Older ops are already in the snapshot and are skipped; a gap
 * tells the caller to ask `room.sync`.
 */
export function applyEarly(state: RoomState, ops: readonly RoomsOp[]): OpResult {
  let current = state;
  let gap = false;
  for (const op of [...ops].sort((a, b) => a.seq - b.seq)) {
    const result = applyOp(current, op);
    current = result.state;
    gap ||= result.gap;
  }
  return { state: current, gap };
}

export function applyPresence(state: RoomState, members: readonly RoomsParticipant[], left: readonly string[]): RoomState {
  const gone = new Set(left);
  let participants = state.participants.filter((p) => !gone.has(p.sid));
  for (const member of members) participants = upsertBy(participants, member, (p) => p.sid, () => true);
  return { ...state, participants };
}

/** One entry per user (a reader may have several tabs), keeping the first connection's colour. */
export function people(participants: readonly RoomsParticipant[]): RoomsParticipant[] {
  const seen = new Map<string, RoomsParticipant>();
  for (const p of participants) if (!seen.has(p.user_id)) seen.set(p.user_id, p);
  return [...seen.values()];
}

/** Mentions typed as @username in a chat message, as the server expects them. */
export function mentionsIn(text: string): string[] {
  const found = new Set<string>();
  for (const match of text.matchAll(/(?:^|\s)@([a-z0-9][a-z0-9._-]{1,63})/g)) found.add(match[1]!);
  return [...found].slice(0, 20);
}
