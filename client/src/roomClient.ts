import type { Connection } from "./connection";
import type {
  AlertsAlert,
  AnnotationsAnnotation,
  AnnotationsAnnotationAck,
  ChatMessageAck,
  EventAcks,
  EventPayloads,
  RoomsOp,
  RoomsParticipant,
  RoomsResync,
  RoomsViewport,
} from "./protocol/generated";
import { ReportSync } from "./report";
import {
  addRequest,
  applyEarly,
  applyOp,
  applyReplay,
  applyPresence,
  dropRequest,
  setAnswer,
  fromSnapshot,
  upsertAlert,
  upsertAnnotation,
  upsertBy,
  type RoomState,
} from "./room";

type Listener = (state: RoomState) => void;

/** Ops held while the first join is out; beyond this many the join answer is followed by a sync. */
const EARLY_LIMIT = 500;

/** A frame the server rendered for this reader and sent over the room (binary `frame` event). */
export interface RoomFrame {
  meta: EventPayloads["frame"];
  data: ArrayBuffer;
}

/**
 * This tab's membership of one study room: join (or re-join with `since` after a reconnect),
 * keep the sequenced state, relay the report draft, and hand the presenter's viewport to the
 * viewer while following.
 */
export class RoomClient {
  state: RoomState | null = null;
  error: string | null = null;
  readonly report: ReportSync;
  private listeners = new Set<Listener>();
  private followers = new Set<(viewport: RoomsViewport, presenter: string, node: string | undefined) => void>();
  private frameHandlers = new Set<(frame: RoomFrame) => Promise<void>>();
  /** The server process holding this connection (from the join answer); see follow.viewport. */
  node: string | null = null;
  /** Frames received over the room in this study (shown on the canvas for tests and debugging). */
  framesReceived = 0;
  private following = false;
  private offs: Array<() => void> = [];
  private syncing = false;
  private syncAgain = false;
  /** Ops that arrived before the first join answer (see `applyEarly`), and whether some were
   * dropped for want of room. */
  private early: RoomsOp[] = [];
  private earlyDropped = false;
  private left = false;

  constructor(
    private readonly connection: Connection,
    readonly studyUid: string,
  ) {
    this.report = new ReportSync((message) => void this.sendReport(message));
    const mine = (uid: string | undefined) => uid === this.studyUid;
    this.offs.push(
      connection.on("room.op", (op: RoomsOp) => {
        if (mine(op.study_uid)) this.applyOp(op);
      }),
      connection.on("room.presence", (p: EventPayloads["room.presence"]) => {
        if (mine(p.study_uid) && this.state) this.set(applyPresence(this.state, p.members, p.left));
      }),
      connection.on("follow.viewport", (p: EventPayloads["follow.viewport"]) => {
        if (!mine(p.study_uid)) return;
        for (const follower of this.followers) follower(p.viewport, p.presenter.user_id, p.node);
      }),
      connection.on("frame", (meta: EventPayloads["frame"], ...rest: unknown[]) => {
        const [data, ack] = rest as [ArrayBuffer, (() => void) | undefined];
        void this.takeFrame(meta, data).finally(() => ack?.());
      }),
      connection.on("follow.requested", (request: EventPayloads["follow.requested"]) => {
        if (mine(request.study_uid) && this.state) this.set(addRequest(this.state, request));
      }),
      connection.on("follow.answered", (answer: EventPayloads["follow.answered"]) => {
        if (mine(answer.study_uid) && this.state) this.set(setAnswer(this.state, answer));
      }),
      connection.on("alert", (alert: AlertsAlert) => {
        if (mine(alert.study_uid) && this.state) this.set({ ...this.state, alerts: upsertAlert(this.state.alerts, alert) });
      }),
      connection.on("report.sync", (p: EventPayloads["report.sync"]) => {
        if (!mine(p.study_uid)) return;
        const reply = this.report.receive(p.message);
        if (reply) void this.sendReport(reply);
      }),
      connection.onResync(() => this.join()),
    );
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    if (this.state) listener(this.state);
    return () => this.listeners.delete(listener);
  }

  onFollowViewport(handler: (viewport: RoomsViewport, presenter: string, node: string | undefined) => void): () => void {
    this.followers.add(handler);
    return () => this.followers.delete(handler);
  }

  /** Frames over the room; the server's next frame waits until the handler has taken this one. */
  onFrame(handler: (frame: RoomFrame) => Promise<void>): () => void {
    this.frameHandlers.add(handler);
    return () => this.frameHandlers.delete(handler);
  }

  /** Follow the presenter (or step out); the server renders the presenter's frames for followers. */
  async setFollowing(following: boolean): Promise<void> {
    this.following = following;
    await this.connection.request("follow.set", { study_uid: this.studyUid, following });
  }

  /** Ask this connection's node for a frame of a viewport (latest wins), e.g. the presenter's. */
  render(viewport: RoomsViewport): void {
    if (viewport.instance_uid && viewport.canvas) {
      this.connection.volatile("viewport.render", { study_uid: this.studyUid, viewport });
    }
  }

  private async takeFrame(meta: EventPayloads["frame"], data: ArrayBuffer): Promise<void> {
    if (meta.study_uid !== this.studyUid || this.left) return;
    this.framesReceived += 1;
    await Promise.all([...this.frameHandlers].map((handler) => handler({ meta, data }).catch(() => undefined)));
  }

  async join(): Promise<void> {
    if (this.left) return;
    const payload: EventPayloads["room.join"] = { study_uid: this.studyUid };
    if (this.state) payload.since = this.state.seq;
    const ack = await this.connection.request<RoomsResync>("room.join", payload);
    this.node = ack.node ?? null;
    this.adopt(ack);
    this.takeEarly();
    // The server counts a new member as following; say what this reader does.
    await this.setFollowing(this.following).catch(() => undefined);
    await this.helloReport();
  }

  leave(): void {
    this.left = true;
    this.offs.forEach((off) => off());
    this.listeners.clear();
    this.followers.clear();
    this.frameHandlers.clear();
    this.connection.request("room.leave", { study_uid: this.studyUid }).catch(() => undefined);
    this.report.destroy();
  }

  me(sid: string | undefined): RoomsParticipant | undefined {
    return this.state?.participants.find((p) => p.sid === sid);
  }

  async annotate(payload: Omit<EventPayloads["annotation.create"], "study_uid">): Promise<AnnotationsAnnotation> {
    const ack = await this.connection.request<AnnotationsAnnotationAck>("annotation.create", { ...payload, study_uid: this.studyUid });
    if (this.state) this.set({ ...this.state, annotations: upsertAnnotation(this.state.annotations, ack.annotation) });
    return ack.annotation;
  }

  async deleteAnnotation(annotation: AnnotationsAnnotation): Promise<void> {
    const ack = await this.connection.request<AnnotationsAnnotationAck>("annotation.delete", {
      study_uid: this.studyUid,
      id: annotation.id,
      version: annotation.version,
    });
    if (this.state) this.set({ ...this.state, annotations: upsertAnnotation(this.state.annotations, { ...ack.annotation, deleted: true }) });
  }

  async undo(): Promise<void> {
    const ack = await this.connection.request<AnnotationsAnnotationAck>("annotation.undo", { study_uid: this.studyUid });
    if (this.state) this.set({ ...this.state, annotations: upsertAnnotation(this.state.annotations, ack.annotation) });
  }

  async chat(text: string, mentions: string[], viewport?: RoomsViewport): Promise<void> {
    const payload: Record<string, unknown> = { study_uid: this.studyUid, text };
    if (mentions.length) payload.mentions = mentions;
    if (viewport) payload.ref = { viewport };
    const ack = await this.connection.request<ChatMessageAck>("chat.send", payload);
    if (this.state) this.set({ ...this.state, chat: upsertBy(this.state.chat, ack.message, (m) => m.id, () => true) });
  }

  /** Ask the presenter for control; their answer arrives as `state.answer`. */
  async requestControl(): Promise<void> {
    if (this.state) this.set({ ...this.state, answer: null });
    await this.connection.request<EventAcks["follow.request"]>("follow.request", { study_uid: this.studyUid });
  }

  /** As presenter: grant or decline a request (a stale one is refused and dropped here). */
  async answerControl(requestId: string, grant: boolean): Promise<void> {
    try {
      await this.connection.request<EventAcks["follow.answer"]>("follow.answer", { study_uid: this.studyUid, request_id: requestId, grant });
    } finally {
      if (this.state) this.set(dropRequest(this.state, requestId));
    }
  }

  /** Any study-room event (follow.*, alert actions): the study is filled in. */
  request(event: string, payload: Record<string, unknown> = {}): Promise<unknown> {
    return this.connection.request(event, { study_uid: this.studyUid, ...payload });
  }

  /** Where this reader is; volatile (dropped when offline, batched by the server). */
  presence(viewport: RoomsViewport | null, cursor?: EventPayloads["presence.update"]["cursor"]): void {
    const payload: Record<string, unknown> = { study_uid: this.studyUid };
    if (viewport) {
      payload.viewport = viewport;
      payload.render = false;
    }
    if (cursor !== undefined) payload.cursor = cursor;
    this.connection.volatile("presence.update", payload);
  }

  private adopt(ack: RoomsResync): void {
    if (ack.mode === "snapshot" && ack.snapshot) {
      this.set(fromSnapshot(ack.snapshot));
    } else if (this.state && ack.ops) {
      this.set(applyReplay(this.state, ack.ops));
    }
  }

  private takeEarly(): void {
    const early = this.early;
    const dropped = this.earlyDropped;
    this.early = [];
    this.earlyDropped = false;
    if (!this.state || (!early.length && !dropped)) return;
    const result = applyEarly(this.state, early);
    if (result.state !== this.state) this.set(result.state);
    if (result.gap || dropped) void this.sync();
  }

  private applyOp(op: RoomsOp): void {
    if (!this.state) {
      if (this.early.length < EARLY_LIMIT) this.early.push(op);
      else this.earlyDropped = true;
      return;
    }
    const result = applyOp(this.state, op);
    if (result.gap) {
      void this.sync();
      return;
    }
    if (result.state !== this.state) this.set(result.state);
  }

  /**
   * A gap in seq: fetch what was missed (or a snapshot), one request at a time. A gap seen while
   * a request is out (an op newer than its answer, dropped meanwhile) asks again once it is back;
   * otherwise that op would stay missing until some later op happened to reveal the gap.
   */
  private async sync(): Promise<void> {
    if (!this.state) return;
    if (this.syncing) {
      this.syncAgain = true;
      return;
    }
    this.syncing = true;
    try {
      do {
        this.syncAgain = false;
        const since = this.state?.seq;
        if (since === undefined) return;
        const ack = await this.connection.request<RoomsResync>("room.sync", { study_uid: this.studyUid, since });
        this.adopt(ack);
      } while (this.syncAgain);
    } finally {
      this.syncing = false;
    }
  }

  private async helloReport(): Promise<void> {
    await this.sendReport(this.report.hello());
  }

  private async sendReport(message: string): Promise<void> {
    try {
      const ack = await this.connection.request<EventAcks["report.sync"]>("report.sync", { study_uid: this.studyUid, message });
      for (const answer of ack.messages) {
        const reply = this.report.receive(answer);
        if (reply) void this.sendReport(reply);
      }
    } catch {
      // Edits stay in the local document; the next sync after reconnecting carries them.
    }
  }

  private set(state: RoomState): void {
    this.state = state;
    for (const listener of this.listeners) listener(state);
  }
}
