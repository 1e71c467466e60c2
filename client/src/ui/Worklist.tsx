import { useCallback, useEffect, useMemo, useRef, useState } from "preact/hooks";
import type { Connection } from "../connection";
import { ApiFailure } from "../protocol/errors";
import type { AlertsAlert, EventPayloads } from "../protocol/generated";
import type { Session } from "../session";
import { NO_FILTERS, matches, mergeStudy, sortStudies, worklistQuery, type Study, type WorklistFilters } from "../worklist";
import { navigate } from "./hooks";

const STATUS_LABEL: Record<Study["status"], string> = {
  scheduled: "Scheduled",
  arrived: "Arrived",
  unread: "Unread",
  reading: "Reading",
  preliminary: "Preliminary",
  final: "Final",
  amended: "Amended",
  cancelled: "Cancelled",
};


export function Worklist({ session, connection }: { session: Session; connection: Connection }) {
  const me = session.user?.username ?? "";
  const [filters, setFilters] = useState<WorklistFilters>(NO_FILTERS);
  const [search, setSearch] = useState("");
  const [rows, setRows] = useState<Study[]>([]);
  const [total, setTotal] = useState(0);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const [alerts, setAlerts] = useState<Record<string, AlertsAlert>>({});
  const filtersRef = useRef(filters);
  filtersRef.current = filters;

  useEffect(() => {
    const timer = setTimeout(() => setFilters((f) => (f.q === search ? f : { ...f, q: search })), 250);
    return () => clearTimeout(timer);
  }, [search]);

  const load = useCallback(async () => {
    setLoading(true);
    try {
      const page = await session.request("worklist.list", { query: worklistQuery(filtersRef.current) });
      setRows(page.items);
      setTotal(page.total ?? page.items.length);
      setError(null);
    } catch (failure) {
      setError(failure instanceof ApiFailure ? failure.message : "The worklist could not be loaded.");
    } finally {
      setLoading(false);
    }
  }, [session]);

  useEffect(() => {
    void load();
  }, [filters, load]);

  useEffect(() => {
    const join = () => connection.request("worklist.join", {}).catch(() => undefined);
    void join();
    const offs = [
      connection.onResync(async () => {
        await join();
        await load();
      }),
      connection.on("worklist.changed", (payload: EventPayloads["worklist.changed"]) => {
        setRows((current) => {
          if (!matches(payload.study, filtersRef.current, me)) {
            return current.filter((row) => row.id !== payload.study.id);
          }
          const next = mergeStudy(current, payload.study);
          if (next.length > current.length) setTotal((t) => t + 1);
          return next;
        });
      }),
      connection.on("study.status_changed", (payload: EventPayloads["study.status_changed"]) => {
        setRows((current) =>
          current.map((row) => (row.id === payload.study_id ? { ...row, status: payload.to, status_at: payload.at } : row)),
        );
      }),
      connection.on("alert", (alert: AlertsAlert) => setAlerts((a) => ({ ...a, [alert.id]: alert }))),
    ];
    return () => offs.forEach((off) => off());
  }, [connection, load, me]);

  const openAlerts = useMemo(() => {
    const byStudy: Record<string, number> = {};
    for (const alert of Object.values(alerts)) {
      if (alert.status === "open" || alert.status === "escalated") byStudy[alert.study_uid] = (byStudy[alert.study_uid] ?? 0) + 1;
    }
    return byStudy;
  }, [alerts]);

  const sorted = useMemo(() => sortStudies(rows), [rows]);
  const modalities = useMemo(() => [...new Set(rows.map((r) => r.modality).filter(Boolean) as string[])].sort(), [rows]);
  const toggle = (key: "mine" | "unread" | "stat") => setFilters((f) => ({ ...f, [key]: !f[key] }));

  return (
    <section class="worklist">
      <div class="filters" role="toolbar" aria-label="Worklist filters">
        <input type="search" placeholder="Search patient name, ID or accession" value={search} data-testid="worklist-search"
          onInput={(e) => setSearch((e.target as HTMLInputElement).value)} />
        <button type="button" class={filters.mine ? "on" : ""} aria-pressed={filters.mine} onClick={() => toggle("mine")}>Mine</button>
        <button type="button" class={filters.unread ? "on" : ""} aria-pressed={filters.unread} onClick={() => toggle("unread")}>Unread</button>
        <button type="button" class={filters.stat ? "on" : ""} aria-pressed={filters.stat} onClick={() => toggle("stat")} data-testid="filter-stat">STAT</button>
        <select value={filters.modality} aria-label="Modality" onChange={(e) => setFilters((f) => ({ ...f, modality: (e.target as HTMLSelectElement).value }))}>
          <option value="">All modalities</option>
          {[...new Set([...modalities, "CT", "MR", "CR", "DX", "US", "MG", "NM", "PT", "XA"])].map((m) => <option value={m}>{m}</option>)}
        </select>
        <label>From <input type="date" value={filters.since} onChange={(e) => setFilters((f) => ({ ...f, since: (e.target as HTMLInputElement).value }))} /></label>
        <label>To <input type="date" value={filters.until} onChange={(e) => setFilters((f) => ({ ...f, until: (e.target as HTMLInputElement).value }))} /></label>
        <span class="count" data-testid="worklist-count">{loading ? "Loading…" : `${total} studies`}</span>
      </div>
      {error && <p class="error" role="alert" data-testid="worklist-error">{error}</p>}
      <table class="grid" data-testid="worklist-table">
        <thead>
          <tr><th>Priority</th><th>Patient</th><th>Patient ID</th><th>Accession</th><th>Modality</th><th>Procedure</th><th>Status</th><th>Images</th><th>Assigned</th><th>Alerts</th></tr>
        </thead>
        <tbody>
          {sorted.map((row) => {
            const alertCount = Math.max(row.open_alerts, openAlerts[row.study_instance_uid] ?? 0);
            return (
              <tr key={row.id} class={`row priority-${row.priority}${row.overdue ? " overdue" : ""}`} data-testid="worklist-row"
                data-study-uid={row.study_instance_uid} tabIndex={0}
                onDblClick={() => navigate("study", row.study_instance_uid)}
                onKeyDown={(e) => e.key === "Enter" && navigate("study", row.study_instance_uid)}>
                <td><span class={`badge badge-${row.priority}`}>{row.priority.toUpperCase()}</span></td>
                <td><a href={`#/study/${encodeURIComponent(row.study_instance_uid)}`} data-testid="open-study">{row.patient_name.replace(/\^/g, ", ")}</a></td>
                <td>{row.patient_id}</td>
                <td>{row.accession_number}</td>
                <td>{row.modality ?? ""}</td>
                <td>{row.requested_procedure ?? ""}</td>
                <td data-testid="status">{STATUS_LABEL[row.status]}{row.overdue ? " · overdue" : ""}</td>
                <td>{row.images}</td>
                <td>{row.claimed_by ?? row.assigned_to ?? ""}</td>
                <td>{alertCount > 0 && <span class="badge badge-alert" data-testid="alert-badge">{alertCount}</span>}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
      {!loading && !error && sorted.length === 0 && <p class="empty">No studies match.</p>}
    </section>
  );
}
