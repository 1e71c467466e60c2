import * as decoding from "lib0/decoding";
import * as encoding from "lib0/encoding";
import * as syncProtocol from "y-protocols/sync";
import * as Y from "yjs";

/** The name of the shared text inside the room's report document (pycrdt: doc.get("report", type=Text)). */
export const REPORT_TEXT = "report";
const REMOTE = Symbol("remote");
/** y-websocket framing: every message starts with its type; sync messages are type 0. */
const MESSAGE_SYNC = 0;

function syncEncoder(): encoding.Encoder {
  const encoder = encoding.createEncoder();
  encoding.writeVarUint(encoder, MESSAGE_SYNC);
  return encoder;
}

export function toBase64(bytes: Uint8Array): string {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

export function fromBase64(text: string): Uint8Array {
  const raw = atob(text);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i += 1) bytes[i] = raw.charCodeAt(i);
  return bytes;
}

/**
 * One client's side of the y-protocols sync exchange for a report draft, framed as y-websocket
 * does (a leading message type) so pycrdt's server reads it. Messages travel as base64 strings
 * in `report.sync`; local edits are sent as update messages, remote ones applied
 * with an origin that keeps them from being echoed back.
 */
export class ReportSync {
  readonly doc = new Y.Doc();
  readonly text = this.doc.getText(REPORT_TEXT);

  constructor(private readonly send: (message: string) => void) {
    this.doc.on("update", (update: Uint8Array, origin: unknown) => {
      if (origin === REMOTE) return;
      const encoder = syncEncoder();
      syncProtocol.writeUpdate(encoder, update);
      this.send(toBase64(encoding.toUint8Array(encoder)));
    });
  }

  /** Sync step 1: our state vector, so the server answers with what we lack. */
  hello(): string {
    const encoder = syncEncoder();
    syncProtocol.writeSyncStep1(encoder, this.doc);
    return toBase64(encoding.toUint8Array(encoder));
  }

  /** Applies one message from the server; returns a reply to send (for a server's step 1). */
  receive(message: string): string | null {
    const decoder = decoding.createDecoder(fromBase64(message));
    if (decoding.readVarUint(decoder) !== MESSAGE_SYNC) return null;
    const encoder = syncEncoder();
    syncProtocol.readSyncMessage(decoder, encoder, this.doc, REMOTE);
    return encoding.length(encoder) > 1 ? toBase64(encoding.toUint8Array(encoder)) : null;
  }

  /** Replace the text with `next` as a minimal edit (common prefix and suffix kept). */
  setText(next: string): void {
    const current = this.text.toString();
    if (current === next) return;
    let start = 0;
    while (start < current.length && start < next.length && current[start] === next[start]) start += 1;
    let endCurrent = current.length;
    let endNext = next.length;
    while (endCurrent > start && endNext > start && current[endCurrent - 1] === next[endNext - 1]) {
      endCurrent -= 1;
      endNext -= 1;
    }
    this.doc.transact(() => {
      if (endCurrent > start) this.text.delete(start, endCurrent - start);
      if (endNext > start) this.text.insert(start, next.slice(start, endNext));
    });
  }

  destroy(): void {
    this.doc.destroy();
  }
}
