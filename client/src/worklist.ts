import type { WorkflowStudy } from "./protocol/generated";

export type Study = WorkflowStudy;

export interface WorklistFilters {
  mine: boolean;
  unread: boolean;
  stat: boolean;
  modality: string;
  since: string;
  until: string;
  q: string;
}

export const NO_FILTERS: WorklistFilters = {
  mine: false,
  unread: false,
  stat: false,
  modality: "",
  since: "",
  until: "",
  q: "",
};

/** The worklist.list query for these filters (dates as the ISO day bounds the server expects). */
export function worklistQuery(filters: WorklistFilters): Record<string, string | boolean | undefined> {
  return {
    mine: filters.mine || undefined,
    unread: filters.unread || undefined,
    stat: filters.stat || undefined,
    modality: filters.modality || undefined,
    since: filters.since ? `${filters.since}T00:00:00Z` : undefined,
    until: filters.until ? `${filters.until}T23:59:59Z` : undefined,
    q: filters.q.trim() || undefined,
    limit: "200",
    count: true,
  };
}

/**
 * Whether a row pushed live belongs in the current view. The server filters the first page; live
 * rows are filtered here the same way so an arrival outside the filter does not appear.
 */
export function matches(study: Study, filters: WorklistFilters, me: string): boolean {
  if (filters.mine && study.assigned_to !== me && study.claimed_by !== me) return false;
  if (filters.unread && study.status !== "unread") return false;
  if (filters.stat && study.priority !== "stat") return false;
  if (filters.modality && study.modality !== filters.modality) return false;
  const day = (study.arrived_at ?? study.scheduled_at ?? study.created_at).slice(0, 10);
  if (filters.since && day < filters.since) return false;
  if (filters.until && day > filters.until) return false;
  const q = filters.q.trim().toLowerCase();
  if (q) {
    const haystack = [study.patient_name, study.patient_id, study.accession_number].join(" ").toLowerCase();
    if (!haystack.includes(q)) return false;
  }
  return true;
}

/** Replace a row by id when the incoming version is newer; add it when new. */
export function mergeStudy(rows: readonly Study[], study: Study): Study[] {
  const index = rows.findIndex((row) => row.id === study.id);
  if (index < 0) return [...rows, study];
  if (rows[index]!.version >= study.version) return rows as Study[];
  const next = rows.slice();
  next[index] = study;
  return next;
}

const PRIORITY_RANK: Record<Study["priority"], number> = { stat: 0, urgent: 1, routine: 2 };

/** STAT first, then urgent, then routine; newest arrivals first within a priority. */
export function sortStudies(rows: readonly Study[]): Study[] {
  const when = (s: Study) => s.arrived_at ?? s.scheduled_at ?? s.created_at;
  return [...rows].sort(
    (a, b) => PRIORITY_RANK[a.priority] - PRIORITY_RANK[b.priority] || when(b).localeCompare(when(a)),
  );
}
