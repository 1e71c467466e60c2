import type { Session } from "./session";

/** A study's series and instances from QIDO-RS (DICOM JSON), in reading order. */
export interface InstanceRef {
  sop: string;
  number: number;
  frames: number;
}

export interface SeriesInfo {
  uid: string;
  number: number;
  modality: string;
  description: string;
  instances: InstanceRef[];
}

/** One image of a stack: an instance, and a frame of it for multi-frame objects. */
export interface Slice {
  sop: string;
  frame: number;
}

type DicomJson = Record<string, { vr?: string; Value?: unknown[] } | undefined>;

export function attr(item: DicomJson, tag: string): unknown {
  return item[tag]?.Value?.[0];
}

function text(item: DicomJson, tag: string): string {
  const value = attr(item, tag);
  if (typeof value === "string") return value;
  if (typeof value === "number") return String(value);
  return "";
}

function int(item: DicomJson, tag: string, fallback: number): number {
  const value = Number(attr(item, tag));
  return Number.isFinite(value) ? value : fallback;
}

export function parseInstances(items: DicomJson[]): InstanceRef[] {
  return items
    .map((item, i) => ({ sop: text(item, "00080018"), number: int(item, "00200013", i + 1), frames: Math.max(1, int(item, "00280008", 1)) }))
    .filter((i) => i.sop)
    .sort((a, b) => a.number - b.number);
}

export function parseSeries(items: DicomJson[]): Omit<SeriesInfo, "instances">[] {
  return items
    .map((item, i) => ({
      uid: text(item, "0020000E"),
      number: int(item, "00200011", i + 1),
      modality: text(item, "00080060"),
      description: text(item, "0008103E"),
    }))
    .filter((s) => s.uid)
    .sort((a, b) => a.number - b.number);
}

export function slicesOf(series: SeriesInfo): Slice[] {
  return series.instances.flatMap((instance) =>
    Array.from({ length: instance.frames }, (_, frame) => ({ sop: instance.sop, frame })),
  );
}

const DICOM_JSON = "application/dicom+json, application/json";

export async function loadStudy(session: Session, studyUid: string): Promise<SeriesInfo[]> {
  const base = `/dicom-web/studies/${encodeURIComponent(studyUid)}`;
  const series = parseSeries((await session.authorized<DicomJson[] | null>("GET", `${base}/series`, undefined, DICOM_JSON)) ?? []);
  return Promise.all(
    series.map(async (s) => {
      const items = await session.authorized<DicomJson[] | null>(
        "GET",
        `${base}/series/${encodeURIComponent(s.uid)}/instances`,
        undefined,
        DICOM_JSON,
      );
      return { ...s, instances: parseInstances(items ?? []) };
    }),
  );
}

export function thumbnailPath(studyUid: string, series: SeriesInfo): string | null {
  const middle = series.instances[Math.floor(series.instances.length / 2)];
  if (!middle) return null;
  const e = encodeURIComponent;
  return `/dicom-web/studies/${e(studyUid)}/series/${e(series.uid)}/instances/${e(middle.sop)}/thumbnail`;
}

export interface RenderInfo {
  rows: number;
  columns: number;
  frames: number;
  modality: string;
  pixel_spacing: [number, number] | null;
  units: string;
  presets: Array<{ name: string; label: string; center: number; width: number }>;
}

export function renderInfo(session: Session, sop: string): Promise<RenderInfo> {
  return session.authorized<RenderInfo>("GET", `/api/render/instances/${encodeURIComponent(sop)}/info`);
}
