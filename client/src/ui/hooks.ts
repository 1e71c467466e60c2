import { useEffect, useState } from "preact/hooks";
import type { Connection, LinkStatus } from "../connection";
import type { Session, SessionState } from "../session";

export function useSession(session: Session): SessionState {
  const [state, setState] = useState(session.state);
  useEffect(() => session.subscribe(setState), [session]);
  return state;
}

export function useLinkStatus(connection: Connection): LinkStatus {
  const [status, setStatus] = useState(connection.status);
  useEffect(() => connection.onStatus(setStatus), [connection]);
  return status;
}

/** The hash route: `#/worklist`, `#/uploads`, `#/study/<uid>`. No tokens ever go here. */
export function useRoute(): string[] {
  const read = () => window.location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  const [route, setRoute] = useState(read);
  useEffect(() => {
    const changed = () => setRoute(read());
    window.addEventListener("hashchange", changed);
    return () => window.removeEventListener("hashchange", changed);
  }, []);
  return route;
}

export function navigate(...parts: string[]): void {
  window.location.hash = `#/${parts.map(encodeURIComponent).join("/")}`;
}
