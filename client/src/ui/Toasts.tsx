import { useEffect, useState } from "preact/hooks";
import type { Connection } from "../connection";
import { ApiFailure } from "../protocol/errors";
import type { AlertsActionAck, AlertsAlert } from "../protocol/generated";

/** Alert toasts for the signed-in reader, with acknowledge; resolved or acknowledged ones leave. */
export function AlertToasts({ connection }: { connection: Connection }) {
  const [alerts, setAlerts] = useState<AlertsAlert[]>([]);
  const [problem, setProblem] = useState<string | null>(null);

  useEffect(
    () =>
      connection.on("alert", (alert: AlertsAlert) =>
        setAlerts((current) => {
          const rest = current.filter((a) => a.id !== alert.id);
          const known = current.find((a) => a.id === alert.id);
          if (known && known.version >= alert.version) return current;
          return alert.status === "open" || alert.status === "escalated" ? [alert, ...rest] : rest;
        }),
      ),
    [connection],
  );

  const acknowledge = async (alert: AlertsAlert) => {
    try {
      const ack = await connection.request<AlertsActionAck>("alert.acknowledge", { alert_id: alert.id, version: alert.version });
      setAlerts((current) => current.filter((a) => a.id !== ack.alert.id));
      setProblem(null);
    } catch (failure) {
      setProblem(failure instanceof ApiFailure ? failure.message : "Could not acknowledge.");
    }
  };

  if (alerts.length === 0) return null;
  return (
    <div class="toasts" aria-live="assertive">
      {alerts.map((alert) => (
        <div key={alert.id} class={`toast toast-${alert.severity}`} role="alert" data-testid="alert-toast">
          <strong>{alert.title}</strong>
          {alert.message && <p>{alert.message}</p>}
          <div class="toast-actions">
            <a href={`#/study/${encodeURIComponent(alert.study_uid)}`}>Open study</a>
            <button type="button" data-testid="alert-ack" onClick={() => void acknowledge(alert)}>Acknowledge</button>
          </div>
        </div>
      ))}
      {problem && <p class="error">{problem}</p>}
    </div>
  );
}
