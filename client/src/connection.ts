import { io, type Socket } from "socket.io-client";
import { ApiFailure, endsSession, errorOf } from "./protocol/errors";
import type { EventAcks, EventPayloads } from "./protocol/generated";
import type { Session } from "./session";

export type LinkStatus = "connecting" | "online" | "offline" | "resynced";

type Handler = (payload: never, ...rest: unknown[]) => void;

const ACK_TIMEOUT_MS = 10_000;

/**
 * The one Socket.IO connection of a signed-in tab. It authenticates with the in-memory access
 * token, renews that token in place when the session refreshes it, and after any drop reconnects
 * and runs the resync hooks (python-socketio keeps no state across reconnects, so every view that
 * holds live state re-joins and reloads it).
 */
export class Connection {
  readonly socket: Socket;
  status: LinkStatus = "connecting";
  private statusListeners = new Set<(status: LinkStatus) => void>();
  private resyncHooks = new Set<() => Promise<unknown> | void>();
  private everConnected = false;
  private stopToken: () => void;
  private stopSession: () => void;
  /** The session expired while this connection lived: on the next token, reconnect and resync
   * rather than renew, so what was typed meanwhile (the report draft) reaches the room. */
  private lapsed = false;
  private closed = false;
  private serverDrops = 0;

  constructor(private readonly session: Session, url = "/") {
    this.socket = io(url, {
      path: "/socket.io",
      transports: ["websocket"],
      autoConnect: false,
      reconnectionDelay: 500,
      reconnectionDelayMax: 5_000,
      auth: (cb) => cb({ token: this.session.token ?? "" }),
    });
    this.socket.on("connect", () => void this.connected());
    this.socket.on("disconnect", (reason) => this.dropped(reason));
    this.socket.io.on("reconnect_attempt", () => this.setStatus("offline"));
    this.socket.on("connect_error", (error: Error & { data?: unknown }) => void this.refused(error));
    this.socket.on("session.expired", () => void this.session.refresh().catch(() => undefined));
    this.stopToken = session.onToken((token) => void this.renew(token));
    this.stopSession = session.subscribe((state) => {
      if (state.kind === "expired") this.lapsed = true;
    });
    this.socket.connect();
  }

  onStatus(listener: (status: LinkStatus) => void): () => void {
    this.statusListeners.add(listener);
    return () => this.statusListeners.delete(listener);
  }

  /** Registers a hook run after every reconnect; returns an unsubscribe. */
  onResync(hook: () => Promise<unknown> | void): () => void {
    this.resyncHooks.add(hook);
    return () => this.resyncHooks.delete(hook);
  }

  on(event: string, handler: Handler): () => void {
    this.socket.on(event, handler as (...args: unknown[]) => void);
    return () => this.socket.off(event, handler as (...args: unknown[]) => void);
  }

  /** Emits a catalog event and resolves with its acknowledgement, or rejects with its error. */
  async request<A = Record<string, unknown>>(event: string, payload: unknown): Promise<A> {
    const answer: unknown = await this.socket.timeout(ACK_TIMEOUT_MS).emitWithAck(event, payload).catch(() => {
      throw new ApiFailure("network_error", `No answer to ${event}.`);
    });
    const failure = errorOf(answer);
    if (failure) throw failure;
    return answer as A;
  }

  /** Fire-and-forget for volatile traffic (cursors): dropped rather than queued when offline. */
  volatile(event: string, payload: unknown): void {
    if (this.socket.connected) this.socket.volatile.emit(event, payload);
  }

  close(): void {
    this.closed = true;
    this.stopToken();
    this.stopSession();
    this.socket.disconnect();
    this.statusListeners.clear();
    this.resyncHooks.clear();
  }

  private async connected(): Promise<void> {
    setTimeout(() => {
      if (this.socket.connected) this.serverDrops = 0;
    }, 30_000);
    if (!this.everConnected) {
      this.everConnected = true;
      this.setStatus("online");
      return;
    }
    for (const hook of [...this.resyncHooks]) {
      try {
        await hook();
      } catch (error) {
        console.warn("resync hook failed", error);
      }
    }
    if (this.socket.connected) this.setStatus("resynced");
  }

  /**
   * socket.io-client retries by itself after a network fault, but not when the server closed the
   * connection (a restart, a flood cut-off); retry then too, backing off if it keeps happening.
   */
  private dropped(reason: string): void {
    this.setStatus("offline");
    if (reason !== "io server disconnect" || this.closed) return;
    this.serverDrops += 1;
    const delay = Math.min(10_000, 250 * 2 ** Math.min(this.serverDrops, 6));
    setTimeout(() => {
      if (!this.closed && !this.socket.connected) this.socket.connect();
    }, delay);
  }

  private async refused(error: Error & { data?: unknown }): Promise<void> {
    const failure = errorOf(error.data);
    if (!failure) {
      this.setStatus(this.everConnected ? "offline" : "connecting");
      return;
    }
    // A refusal by the server is final for socket.io-client; retry once the token is fresh.
    this.setStatus("offline");
    if (failure.code === "token_expired") {
      try {
        await this.session.refresh();
        if (!this.closed) this.socket.connect();
      } catch {
        // The session ended; the UI asks the user to sign in again.
      }
    } else if (endsSession(failure.code)) {
      this.session.expire();
    }
  }

  private async renew(token: string): Promise<void> {
    if (this.lapsed) {
      this.lapsed = false;
      if (this.socket.connected) this.socket.disconnect();
      if (!this.closed) this.socket.connect();
      return;
    }
    if (!this.socket.connected) return;
    const payload: EventPayloads["session.renew"] = { token };
    try {
      await this.request<EventAcks["session.renew"]>("session.renew", payload);
    } catch {
      this.socket.disconnect().connect();
    }
  }

  private setStatus(status: LinkStatus): void {
    if (this.status === status) return;
    this.status = status;
    for (const listener of this.statusListeners) listener(status);
  }
}
