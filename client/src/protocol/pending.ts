// Types generated (client/scripts/gen-protocol.mjs) from the catalog files the rooms branch is
// writing (shared/protocol/events/{rooms,presence,annotations,chat,report,alerts}.json), which
// are not on main yet. When they land these names come from generated.ts instead and this file
// is deleted; the names are the generator's, so the switch is an import change.
/* eslint-disable */
import type { DefsError, DefsFacility, DefsRole, DefsUid, DefsUsername } from "./generated";


export type AlertsStatus = "open" | "acknowledged" | "escalated" | "resolved";

export type AlertsAlert = {
  id: string;
  study_uid: RoomsStudyUid;
  facility: DefsFacility;
  severity: "info" | "warning" | "critical";
  status: AlertsStatus;
  title: string;
  message?: string;
  assigned_to?: (string) | (null);
  escalation_level?: number;
  version: number;
  raised_at?: number;
  updated_at?: number;
  updated_by?: (RoomsActor) | (null);
  note?: (string) | (null);
  source?: string;
  [key: string]: unknown;
};

export type AlertsAction = {
  alert_id: string;
  version: number;
  note?: string;
};

export type AlertsActionAck = {
  ok: true;
  alert: AlertsAlert;
  [key: string]: unknown;
};

export type AnnotationsKind = "length" | "angle" | "cobb" | "ellipse" | "rectangle" | "polygon" | "arrow" | "text" | "key_image";

export type AnnotationsPoint = Array<number>;

export type AnnotationsPoints = Array<AnnotationsPoint>;

export type AnnotationsText = string;

export type AnnotationsMeasurement = {
  status: "measured" | "not_measured" | "none";
  reason?: string;
  values?: {
    [key: string]: unknown;
  };
  [key: string]: unknown;
};

export type AnnotationsAnnotation = {
  id: string;
  study_uid: RoomsStudyUid;
  kind: AnnotationsKind;
  series_uid?: (DefsUid) | (null);
  instance_uid: DefsUid;
  frame: number;
  points: AnnotationsPoints;
  text?: (AnnotationsText) | (null);
  label?: (AnnotationsText) | (null);
  author: RoomsActor;
  version: number;
  created_at?: number;
  updated_at?: number;
  deleted: boolean;
  measurement: AnnotationsMeasurement;
  [key: string]: unknown;
};

export type AnnotationsAnnotationAck = {
  ok: true;
  seq: number;
  annotation: AnnotationsAnnotation;
  [key: string]: unknown;
};

export type ChatText = string;

export type ChatRef = {
  viewport?: RoomsViewport;
  annotation_id?: string;
};

export type ChatMessage = {
  id: string;
  conversation: string;
  study_uid?: (RoomsStudyUid) | (null);
  to_user?: (string) | (null);
  author: RoomsActor;
  text: string;
  mentions: Array<string>;
  ref: (ChatRef) | (null);
  at: number;
  edited_at?: (number) | (null);
  deleted: boolean;
  [key: string]: unknown;
};

export type ChatMessageAck = {
  ok: true;
  message: ChatMessage;
  [key: string]: unknown;
};

export type ChatTarget = unknown;

export type ReportMessage = string;

export type ReportState = {
  state_vector: string;
  updates: number;
  [key: string]: unknown;
};

export type RoomsStudyUid = DefsUid;

export type RoomsSeq = number;

export type RoomsActor = {
  user_id: string;
  username: string;
  [key: string]: unknown;
};

export type RoomsViewport = {
  series_uid?: DefsUid;
  instance_uid?: DefsUid;
  frame?: number;
  window_center?: number;
  window_width?: number;
  zoom?: number;
  pan?: Array<number>;
  rotation?: 0 | 90 | 180 | 270;
  flip_h?: boolean;
  flip_v?: boolean;
  invert?: boolean;
  layout?: string;
  canvas?: Array<number>;
  sync_group?: string;
};

export type RoomsCursor = {
  instance_uid?: DefsUid;
  frame?: number;
  x: number;
  y: number;
};

export type RoomsParticipant = {
  sid: string;
  user_id: string;
  username: string;
  display_name: string;
  role: DefsRole;
  colour: string;
  viewport: (RoomsViewport) | (null);
  cursor?: (RoomsCursor) | (null);
  following: boolean;
  typing?: boolean;
  [key: string]: unknown;
};

export type RoomsOp = {
  study_uid: RoomsStudyUid;
  seq: number;
  type: "annotation.created" | "annotation.updated" | "annotation.deleted" | "chat.message" | "chat.edited" | "chat.deleted" | "presenter.changed" | "alert.changed";
  actor: (RoomsActor) | (null);
  at: number;
  data: {
    [key: string]: unknown;
  };
};

export type RoomsSnapshot = {
  study_uid: RoomsStudyUid;
  seq: RoomsSeq;
  participants: Array<RoomsParticipant>;
  presenter: (RoomsActor) | (null);
  annotations: Array<AnnotationsAnnotation>;
  chat: Array<ChatMessage>;
  report: ReportState;
  alerts: Array<AlertsAlert>;
  [key: string]: unknown;
};

export type RoomsResync = {
  ok: true;
  mode: "ops" | "snapshot";
  seq: RoomsSeq;
  ops?: Array<RoomsOp>;
  snapshot?: RoomsSnapshot;
  [key: string]: unknown;
};

export interface PendingEventPayloads {
  "alert": AlertsAlert;
  "alert.acknowledge": AlertsAction;
  "alert.escalate": AlertsAction;
  "alert.resolve": AlertsAction;
  "annotation.create": {
    study_uid: RoomsStudyUid;
    kind: AnnotationsKind;
    series_uid?: DefsUid;
    instance_uid: DefsUid;
    frame: number;
    points: AnnotationsPoints;
    text?: AnnotationsText;
    label?: AnnotationsText;
  };
  "annotation.delete": {
    study_uid: RoomsStudyUid;
    id: string;
    version: number;
  };
  "annotation.history": {
    study_uid: RoomsStudyUid;
    id: string;
  };
  "annotation.undo": {
    study_uid: RoomsStudyUid;
  };
  "annotation.update": {
    study_uid: RoomsStudyUid;
    id: string;
    version: number;
    points?: AnnotationsPoints;
    text?: AnnotationsText;
    label?: AnnotationsText;
  };
  "chat.delete": {
    id: string;
  };
  "chat.direct": ChatMessage;
  "chat.edit": {
    id: string;
    text: ChatText;
  };
  "chat.history": ({
    study_uid?: RoomsStudyUid;
    to_user?: string;
    before?: string;
    limit?: number;
  }) & (ChatTarget);
  "chat.mention": ChatMessage;
  "chat.send": ({
    study_uid?: RoomsStudyUid;
    to_user?: string;
    text: ChatText;
    mentions?: Array<DefsUsername>;
    ref?: ChatRef;
  }) & (ChatTarget);
  "chat.typing": {
    study_uid: RoomsStudyUid;
    typing: boolean;
  };
  "connect": {
    token: string;
  };
  "connect_error": {
    message: string;
    data: DefsError;
    [key: string]: unknown;
  };
  "follow.handover": {
    study_uid: RoomsStudyUid;
    user_id: string;
  };
  "follow.present": {
    study_uid: RoomsStudyUid;
  };
  "follow.set": {
    study_uid: RoomsStudyUid;
    following: boolean;
  };
  "follow.stop": {
    study_uid: RoomsStudyUid;
  };
  "follow.viewport": {
    study_uid: RoomsStudyUid;
    presenter: RoomsActor;
    viewport: RoomsViewport;
    [key: string]: unknown;
  };
  "frame": {
    study_uid: RoomsStudyUid;
    instance_uid: DefsUid;
    frame: number;
    key: string;
    content_type: string;
    width?: number;
    height?: number;
    quality?: "interactive" | "final";
    viewport: RoomsViewport;
    [key: string]: unknown;
  };
  "frame.error": {
    study_uid: RoomsStudyUid;
    error: {
      code: string;
      message: string;
      details?: unknown;
    };
    [key: string]: unknown;
  };
  "presence.update": {
    study_uid: RoomsStudyUid;
    viewport?: RoomsViewport;
    cursor?: (RoomsCursor) | (null);
    render?: boolean;
  };
  "report.sync": {
    study_uid: RoomsStudyUid;
    message: ReportMessage;
  };
  "room.join": {
    study_uid: RoomsStudyUid;
    since?: RoomsSeq;
  };
  "room.leave": {
    study_uid: RoomsStudyUid;
  };
  "room.op": RoomsOp;
  "room.presence": {
    study_uid: RoomsStudyUid;
    members: Array<RoomsParticipant>;
    left: Array<string>;
    [key: string]: unknown;
  };
  "room.sync": {
    study_uid: RoomsStudyUid;
    since: RoomsSeq;
  };
  "session.expired": DefsError;
  "session.renew": {
    token: string;
  };
  "study.invitation": {
    study_uid: RoomsStudyUid;
    by: RoomsActor;
    [key: string]: unknown;
  };
  "study.invite": {
    study_uid: RoomsStudyUid;
    username: DefsUsername;
  };
  "viewport.render": {
    study_uid: RoomsStudyUid;
    viewport: RoomsViewport;
  };
  "worklist.join": Record<string, never>;
}

export interface PendingEventAcks {
  "alert.acknowledge": AlertsActionAck;
  "alert.escalate": AlertsActionAck;
  "alert.resolve": AlertsActionAck;
  "annotation.create": AnnotationsAnnotationAck;
  "annotation.delete": AnnotationsAnnotationAck;
  "annotation.history": {
    ok: true;
    entries: Array<{
      action: "create" | "update" | "delete" | "undo";
      actor: RoomsActor;
      version: number;
      at: number;
      before?: unknown;
      after?: unknown;
      [key: string]: unknown;
    }>;
    [key: string]: unknown;
  };
  "annotation.undo": AnnotationsAnnotationAck;
  "annotation.update": AnnotationsAnnotationAck;
  "chat.delete": ChatMessageAck;
  "chat.edit": ChatMessageAck;
  "chat.history": {
    ok: true;
    messages: Array<ChatMessage>;
    more: boolean;
    [key: string]: unknown;
  };
  "chat.send": ChatMessageAck;
  "report.sync": {
    ok: true;
    messages: Array<ReportMessage>;
    [key: string]: unknown;
  };
  "room.join": RoomsResync;
  "room.sync": RoomsResync;
  "session.renew": {
    ok: true;
    expires_at: string;
    [key: string]: unknown;
  };
  "study.invite": {
    ok: true;
    invited: string;
    [key: string]: unknown;
  };
  "worklist.join": {
    ok: true;
    room: string;
    [key: string]: unknown;
  };
}
