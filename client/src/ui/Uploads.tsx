import { useEffect, useReducer, useState } from "preact/hooks";
import type { Connection } from "../connection";
import { EMPTY_UPLOADS, UPLOAD_EVENTS, formatBytes, rate, reduceUpload, type UploadState } from "../uploads";

type Action = { event: string; data: Record<string, unknown>; now: number };

function reducer(state: UploadState, action: Action): UploadState {
  return reduceUpload(state, action.event, action.data, action.now);
}

const nowS = () => Date.now() / 1000;

/** Live progress of DICOM associations, fed by the gateway's events through the worklist room. */
export function Uploads({ connection }: { connection: Connection }) {
  const [state, dispatch] = useReducer(reducer, EMPTY_UPLOADS);
  const [now, setNow] = useState(nowS);

  useEffect(() => {
    const join = () => connection.request("worklist.join", {}).catch(() => undefined);
    void join();
    const offs = UPLOAD_EVENTS.map((event) =>
      connection.on(event, (data: Record<string, unknown>) => dispatch({ event, data, now: nowS() })),
    );
    offs.push(connection.onResync(join));
    const timer = setInterval(() => setNow(nowS()), 1000);
    return () => {
      offs.forEach((off) => off());
      clearInterval(timer);
    };
  }, [connection]);

  return (
    <section class="uploads">
      <h2>Associations</h2>
      <table class="grid" data-testid="uploads-table">
        <thead>
          <tr><th>State</th><th>Calling AE</th><th>From</th><th>Studies</th><th>Received</th><th>Failed</th><th>Bytes</th><th>Rate</th><th>Last problem</th></tr>
        </thead>
        <tbody>
          {state.associations.map((a) => (
            <tr key={a.upload_id} data-testid="upload-row">
              <td>{a.open ? "receiving" : a.aborted ? "aborted" : "done"}</td>
              <td>{a.calling_ae}</td>
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
      {state.associations.length === 0 && <p class="empty">No associations since this page opened.</p>}
      <h2>Completed studies</h2>
      <ul class="completed" data-testid="completed-studies">
        {state.completed.map((c) => (
          <li key={c.study_instance_uid}>
            <a href={`#/study/${encodeURIComponent(c.study_instance_uid)}`}>{c.study_instance_uid}</a> — {c.received} images
          </li>
        ))}
      </ul>
    </section>
  );
}
