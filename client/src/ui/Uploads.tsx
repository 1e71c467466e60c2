import { useEffect, useReducer, useState } from "preact/hooks";
import type { Connection } from "../connection";
import { ApiFailure } from "../protocol/errors";
import type { EventPayloads } from "../protocol/generated";
import type { Session } from "../session";
import { EMPTY_UPLOADS, formatBytes, rate, reduceUpload, seedUploads, type UploadState } from "../uploads";

type Action =
  | { kind: "event"; event: string; data: Record<string, unknown>; now: number }
  | { kind: "seed"; docs: Array<Record<string, unknown>>; now: number };

function reducer(state: UploadState, action: Action): UploadState {
  return action.kind === "seed"
    ? seedUploads(state, action.docs, action.now)
    : reduceUpload(state, action.event, action.data, action.now);
}

const nowS = () => Date.now() / 1000;

/** Live progress of DICOM associations: the recent ones from the API, then the uploads room. */
export function Uploads({ session, connection }: { session: Session; connection: Connection }) {
  const [state, dispatch] = useReducer(reducer, EMPTY_UPLOADS);
  const [now, setNow] = useState(nowS);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    const load = async () => {
      try {
        await connection.request("uploads.join", {});
        const listing = await session.request("uploads.list");
        dispatch({ kind: "seed", docs: listing.uploads, now: nowS() });
        setError(null);
      } catch (failure) {
        setError(failure instanceof ApiFailure ? failure.message : "Uploads cannot be watched.");
      }
    };
    void load();
    const offs = [
      connection.on("uploads.event", (payload: EventPayloads["uploads.event"]) =>
        dispatch({ kind: "event", event: payload.topic, data: payload.data, now: nowS() }),
      ),
      connection.onResync(load),
    ];
    const timer = setInterval(() => setNow(nowS()), 1000);
    return () => {
      offs.forEach((off) => off());
      clearInterval(timer);
      connection.request("uploads.leave", {}).catch(() => undefined);
    };
  }, [connection, session]);

  return (
    <section class="uploads">
      {error && <p class="error" role="alert">{error}</p>}
      <h2>Associations</h2>
      <table class="grid" data-testid="uploads-table">
        <thead>
          <tr><th>State</th><th>Calling AE</th><th>From</th><th>Studies</th><th>Received</th><th>Failed</th><th>Bytes</th><th>Rate</th><th>Last problem</th></tr>
        </thead>
        <tbody>
          {state.associations.map((a) => (
            <tr key={a.upload_id} data-testid="upload-row" data-state={a.open ? "open" : "closed"} data-studies={a.studies.join(" ")}>
              <td>{a.open ? "receiving" : a.aborted ? "aborted" : "done"}</td>
              <td data-testid="upload-ae">{a.calling_ae}</td>
              <td>{a.remote}</td>
              <td>{a.studies.length}</td>
              <td data-testid="upload-stored">{a.stored}{a.duplicates ? ` (+${a.duplicates} dup.)` : ""}</td>
              <td class={a.failed ? "error" : ""}>{a.failed}</td>
              <td>{formatBytes(a.bytes)}</td>
              <td>{rate(a, now).toFixed(1)} img/s</td>
              <td>{a.lastFailure ?? ""}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {state.associations.length === 0 && <p class="empty">No associations in the last 24 hours.</p>}
      <h2>Completed studies</h2>
      <ul class="completed" data-testid="completed-studies">
        {state.completed.map((c) => (
          <li key={c.study_instance_uid} data-testid="completed-study">
            <a href={`#/study/${encodeURIComponent(c.study_instance_uid)}`}>{c.study_instance_uid}</a> — {c.received} images
          </li>
        ))}
      </ul>
    </section>
  );
}
