import { useEffect, useRef, useState } from "preact/hooks";
import type { RenderInfo, SeriesInfo, Slice } from "../dicomweb";
import { POINTS_NEEDED, measurementLines } from "../measurements";
import type { AnnotationsAnnotation, EventPayloads, RoomsParticipant } from "../protocol/generated";
import type { Session } from "../session";
import {
  canvasToPixel,
  frameMapping,
  panBy,
  placeFrame,
  pixelToCanvas,
  scrollBy,
  scrollTo,
  transform,
  windowDrag,
  zoomAt,
  type Point,
  type Size,
  type View,
} from "../viewport";

export type PaneMode = "stack" | "axial" | "sagittal" | "coronal";
export type Tool = "wl" | "pan" | "zoom" | "length" | "angle" | "cobb" | "rectangle" | "ellipse" | "probe" | "arrow" | "text";

export const MEASURE_TOOLS: Record<string, number> = POINTS_NEEDED;

/** The latest frame received over the room while following; `count` is the room's total. */
export interface LiveFrame {
  bitmap: ImageBitmap;
  meta: EventPayloads["frame"];
  count: number;
}

export interface PaneState {
  series: number;
  mode: PaneMode;
  slabMm: number;
  view: View;
}

export interface PaneProps {
  session: Session;
  series: SeriesInfo | null;
  slices: Slice[];
  info: RenderInfo | null;
  pane: PaneState;
  active: boolean;
  tool: Tool;
  draft: Point[];
  /** Following: the pane shows the room's frames (rendered for the presenter's view) and
   * fetches none over HTTP. */
  following: boolean;
  live: LiveFrame | null;
  annotations: AnnotationsAnnotation[];
  cursors: RoomsParticipant[];
  colourOf: (userId: string) => string;
  onActivate: () => void;
  onView: (view: View) => void;
  onDraft: (points: Point[]) => void;
  onCursor: (point: Point | null, slice: Slice | null) => void;
  onCanvas: (size: Size) => void;
}

/** How many positions a pane can scroll through: slices, or columns/rows of the volume for MPR. */
export function positions(mode: PaneMode, slices: Slice[], info: RenderInfo | null): number {
  if (mode === "stack" || mode === "axial") return slices.length;
  if (!info) return 0;
  return mode === "sagittal" ? info.columns : info.rows;
}

export function framePath(pane: PaneState, series: SeriesInfo, slices: Slice[], quality: "interactive" | "final"): string | null {
  const view = pane.view;
  const query = new URLSearchParams();
  if (view.width > 0) query.set("window", `${round(view.center)},${round(view.width)}`);
  if (view.invert) query.set("invert", "true");
  query.set("quality", quality);
  if (pane.mode === "stack") {
    const slice = slices[view.index];
    if (!slice) return null;
    return `/api/render/instances/${encodeURIComponent(slice.sop)}/frames/${slice.frame + 1}?${query}`;
  }
  if (pane.slabMm > 0) {
    query.set("slab", String(pane.slabMm));
    query.set("mode", "mip");
  }
  return `/api/render/series/${encodeURIComponent(series.uid)}/mpr/${pane.mode}/${view.index}?${query}`;
}

function round(value: number): string {
  return String(Math.round(value * 100) / 100);
}

const REST_MS = 250;

export function Pane(props: PaneProps) {
  const { session, series, slices, pane, tool } = props;
  const wrap = useRef<HTMLDivElement>(null);
  const canvas = useRef<HTMLCanvasElement>(null);
  const bitmap = useRef<ImageBitmap | null>(null);
  const [canvasSize, setCanvasSize] = useState<Size>({ width: 512, height: 512 });
  const [imageSize, setImageSize] = useState<Size | null>(null);
  const [drawnKey, setDrawnKey] = useState("");
  const [problem, setProblem] = useState<string | null>(null);
  const [quality, setQuality] = useState<"interactive" | "final">("final");
  const latest = useRef<string | null>(null);
  const busy = useRef(false);
  const drag = useRef<{ x: number; y: number; view: View; moved: boolean } | null>(null);
  const view = pane.view;
  const count = positions(pane.mode, slices, props.info);
  const slice = pane.mode === "stack" ? slices[view.index] ?? null : null;
  const path = series && !props.following ? framePath(pane, series, slices, quality) : null;
  const live = props.following ? props.live : null;
  const liveImage = live && props.info ? { width: props.info.columns, height: props.info.rows } : null;
  // Image pixels to this canvas and back: the view's own transform, or the presenter's
  // viewport the room frame was rendered for.
  const mapping = live && liveImage
    ? frameMapping(live.meta.viewport, liveImage, canvasSize)
    : imageSize
      ? { toCanvas: (p: Point) => pixelToCanvas(view, imageSize, canvasSize, p), toPixel: (c: Point) => canvasToPixel(view, imageSize, canvasSize, c) }
      : null;
  const shownSlice = live ? slices.find((s) => s.sop === live.meta.instance_uid && s.frame === live.meta.frame) ?? null : slice;

  // While the view moves, ask for cheap frames; a full-quality one follows once it rests.
  useEffect(() => {
    setQuality("interactive");
    const timer = setTimeout(() => setQuality("final"), REST_MS);
    return () => clearTimeout(timer);
  }, [view.index, view.center, view.width, view.invert, pane.mode, pane.slabMm, series?.uid]);

  useEffect(() => {
    const element = wrap.current;
    if (!element) return;
    const observer = new ResizeObserver(() => {
      const size = { width: Math.max(16, Math.floor(element.clientWidth)), height: Math.max(16, Math.floor(element.clientHeight)) };
      setCanvasSize((old) => (old.width === size.width && old.height === size.height ? old : size));
    });
    observer.observe(element);
    return () => observer.disconnect();
  }, []);

  useEffect(() => props.onCanvas(canvasSize), [canvasSize.width, canvasSize.height]);

  // Latest wins: one request in flight per pane; when it lands, fetch the newest wanted frame.
  useEffect(() => {
    latest.current = path;
    if (!path || busy.current) return;
    const run = async () => {
      busy.current = true;
      try {
        while (latest.current && latest.current !== drawnKeyRef.current) {
          const wanted = latest.current;
          try {
            const { blob, window } = await session.image(wanted);
            const image = await createImageBitmap(blob);
            bitmap.current?.close();
            bitmap.current = image;
            drawnKeyRef.current = wanted;
            setImageSize({ width: image.width, height: image.height });
            setDrawnKey(wanted);
            setProblem(null);
            if (window && pane.view.width <= 0) props.onView({ ...pane.view, center: window[0], width: window[1] });
          } catch (failure) {
            drawnKeyRef.current = wanted;
            setProblem(failure instanceof Error ? failure.message : "The image could not be loaded.");
          }
        }
      } finally {
        busy.current = false;
      }
    };
    void run();
  }, [path]);
  const drawnKeyRef = useRef("");

  // Draw image and overlay whenever anything visible changes.
  useEffect(() => {
    const element = canvas.current;
    const ctx = element?.getContext("2d");
    if (!element || !ctx) return;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, element.width, element.height);
    if (live) {
      const place = placeFrame({ width: live.bitmap.width, height: live.bitmap.height }, canvasSize);
      drawSafely(() => ctx.drawImage(live.bitmap, place.dx, place.dy, live.bitmap.width * place.scale, live.bitmap.height * place.scale));
    }
    const image = bitmap.current;
    if (!live && (!image || !imageSize)) return;
    if (!live && image && imageSize) {
      ctx.imageSmoothingEnabled = view.zoom < 3;
      ctx.setTransform(...transform(view, imageSize, canvasSize));
      drawSafely(() => ctx.drawImage(image, 0, 0));
      ctx.setTransform(1, 0, 0, 1, 0, 0);
    }
    if (pane.mode !== "stack" || !shownSlice || !mapping) return;
    const toCanvas = mapping.toCanvas;
    for (const annotation of props.annotations) {
      if (annotation.instance_uid !== shownSlice.sop || annotation.frame !== shownSlice.frame) continue;
      drawAnnotation(ctx, annotation.kind, annotation.points as Point[], toCanvas, props.colourOf(annotation.author.user_id), labelOf(annotation));
    }
    if (props.active && props.draft.length && tool in MEASURE_TOOLS) {
      drawAnnotation(ctx, tool, props.draft, toCanvas, "#ffd33d", []);
    }
  }, [drawnKey, live, imageSize, canvasSize, view.zoom, view.panX, view.panY, view.rotation, view.flipH, view.flipV, props.annotations, props.draft, props.active, tool]);

  const imagePoint = (event: PointerEvent | WheelEvent | MouseEvent): Point | null => {
    if (!mapping || !canvas.current) return null;
    const rect = canvas.current.getBoundingClientRect();
    return mapping.toPixel([event.clientX - rect.left, event.clientY - rect.top]);
  };

  const onPointerDown = (event: PointerEvent) => {
    props.onActivate();
    (event.target as Element).setPointerCapture?.(event.pointerId);
    const point = imagePoint(event);
    drag.current = { x: event.clientX, y: event.clientY, view, moved: false };
    if (tool in MEASURE_TOOLS && point && pane.mode === "stack") props.onDraft([...props.draft, point]);
  };

  const onPointerMove = (event: PointerEvent) => {
    const point = imagePoint(event);
    props.onCursor(point, shownSlice);
    const d = drag.current;
    if (!d) return;
    const dx = event.clientX - d.x;
    const dy = event.clientY - d.y;
    if (Math.abs(dx) + Math.abs(dy) > 3) d.moved = true;
    if (tool === "wl") props.onView(windowDrag(d.view, dx, dy));
    else if (tool === "pan" && imageSize) props.onView(panBy(d.view, imageSize, canvasSize, dx, dy));
    else if (tool === "zoom" && imageSize) {
      const rect = canvas.current!.getBoundingClientRect();
      props.onView(zoomAt(d.view, imageSize, canvasSize, Math.exp(-dy / 200), [d.x - rect.left, d.y - rect.top]));
    }
  };

  const onPointerUp = (event: PointerEvent) => {
    const d = drag.current;
    drag.current = null;
    const needed = MEASURE_TOOLS[tool] ?? 0;
    // A drag ends a two-point shape; a one-point tool (probe, text) took its point on press.
    if (!d || needed < 2 || !d.moved) return;
    const point = imagePoint(event);
    if (point && props.draft.length < needed) props.onDraft([...props.draft, point]);
  };

  const onWheel = (event: WheelEvent) => {
    event.preventDefault();
    props.onActivate();
    if (event.ctrlKey && imageSize && canvas.current) {
      const rect = canvas.current.getBoundingClientRect();
      props.onView(zoomAt(view, imageSize, canvasSize, Math.exp(-event.deltaY / 500), [event.clientX - rect.left, event.clientY - rect.top]));
    } else {
      props.onView(scrollBy(view, Math.sign(event.deltaY), count));
    }
  };

  useEffect(() => {
    const element = canvas.current;
    if (!element) return;
    element.addEventListener("wheel", onWheel, { passive: false });
    return () => element.removeEventListener("wheel", onWheel);
  });

  return (
    <div class={`pane${props.active ? " active" : ""}`} data-testid="pane" onPointerDown={props.onActivate}>
      <div class="pane-canvas" ref={wrap}>
        <canvas
          ref={canvas}
          width={canvasSize.width}
          height={canvasSize.height}
          data-testid="viewer-canvas"
          data-index={view.index}
          data-drawn={live ? `room:${live.meta.key}` : drawnKey}
          data-source={live ? "room" : "http"}
          data-room-frames={live ? live.count : 0}
          data-window={`${round(view.center)},${round(view.width)}`}
          class={`tool-${tool}`}
          onPointerDown={onPointerDown}
          onPointerMove={onPointerMove}
          onPointerUp={onPointerUp}
          onPointerLeave={() => props.onCursor(null, null)}
        />
        {mapping && shownSlice && props.cursors.map((p) => {
          const c = p.cursor;
          if (!c || (c.instance_uid && c.instance_uid !== shownSlice.sop)) return null;
          const [x, y] = mapping.toCanvas([c.x, c.y]);
          if (x < 0 || y < 0 || x > canvasSize.width || y > canvasSize.height) return null;
          return (
            <span key={p.sid} class="cursor" data-testid="remote-cursor" ref={(el) => {
              if (el) placeAt(el, x, y, p.colour);
            }}>
              {p.display_name || p.username}
            </span>
          );
        })}
        <div class="pane-info">
          <span>{series ? `${series.modality} · ${series.description || `Series ${series.number}`}` : "No series"}</span>
          <span data-testid="slice-label">{pane.mode === "stack" ? `Im ${view.index + 1}/${count}` : `${pane.mode} ${view.index + 1}/${count}${pane.slabMm > 0 ? ` · MIP ${pane.slabMm} mm` : ""}`}</span>
          <span data-testid="window-label">W {Math.round(view.width)} / L {Math.round(view.center)}{view.invert ? " · inv" : ""}</span>
          <span>Zoom {view.zoom.toFixed(2)}×</span>
        </div>
        {problem && <div class="pane-problem" role="alert">{problem}</div>}
      </div>
      <input type="range" class="slice-slider" min={0} max={Math.max(0, count - 1)} value={view.index} aria-label="Slice"
        data-testid="slice-slider" onInput={(e) => props.onView(scrollTo(view, Number((e.target as HTMLInputElement).value), count))} />
    </div>
  );
}

/** Position a DOM marker by CSSOM (the CSP forbids inline style attributes, not CSSOM). */
function placeAt(element: HTMLElement, x: number, y: number, colour: string): void {
  element.style.transform = `translate(${Math.round(x)}px, ${Math.round(y)}px)`;
  element.style.borderColor = colour;
  element.style.color = colour;
}

export function labelOf(annotation: AnnotationsAnnotation): string[] {
  const m = annotation.measurement;
  if (m.status === "measured") return measurementLines(m.values as Record<string, unknown> | undefined);
  if (m.status === "not_measured") return [`not measured: ${m.reason ?? "unknown reason"}`];
  return annotation.text ? [annotation.text] : annotation.label ? [annotation.label] : [];
}

function drawAnnotation(
  ctx: CanvasRenderingContext2D,
  kind: string,
  points: Point[],
  toCanvas: (p: Point) => Point,
  colour: string,
  lines: string[],
): void {
  const c = points.map(toCanvas);
  ctx.strokeStyle = colour;
  ctx.fillStyle = colour;
  ctx.lineWidth = 2;
  ctx.beginPath();
  if (kind === "probe" && c.length >= 1) {
    const [x, y] = c[0]!;
    ctx.moveTo(x - 8, y);
    ctx.lineTo(x - 3, y);
    ctx.moveTo(x + 3, y);
    ctx.lineTo(x + 8, y);
    ctx.moveTo(x, y - 8);
    ctx.lineTo(x, y - 3);
    ctx.moveTo(x, y + 3);
    ctx.lineTo(x, y + 8);
  } else if ((kind === "rectangle" || kind === "ellipse") && c.length >= 2) {
    const [a, b] = [c[0]!, c[1]!];
    if (kind === "rectangle") ctx.rect(Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.abs(b[0] - a[0]), Math.abs(b[1] - a[1]));
    else ctx.ellipse((a[0] + b[0]) / 2, (a[1] + b[1]) / 2, Math.abs(b[0] - a[0]) / 2, Math.abs(b[1] - a[1]) / 2, 0, 0, Math.PI * 2);
  } else if (kind === "cobb" && c.length >= 2) {
    ctx.moveTo(...c[0]!);
    ctx.lineTo(...c[1]!);
    if (c.length >= 4) {
      ctx.moveTo(...c[2]!);
      ctx.lineTo(...c[3]!);
    }
  } else {
    c.forEach((p, i) => (i === 0 ? ctx.moveTo(...p) : ctx.lineTo(...p)));
  }
  ctx.stroke();
  if (kind !== "probe") for (const p of c) ctx.fillRect(p[0] - 2, p[1] - 2, 4, 4);
  if (kind === "arrow" && c.length >= 2) {
    const [tip, tail] = [c[0]!, c[1]!];
    const angle = Math.atan2(tail[1] - tip[1], tail[0] - tip[0]);
    ctx.beginPath();
    ctx.moveTo(...tip);
    ctx.lineTo(tip[0] + 12 * Math.cos(angle - 0.4), tip[1] + 12 * Math.sin(angle - 0.4));
    ctx.moveTo(...tip);
    ctx.lineTo(tip[0] + 12 * Math.cos(angle + 0.4), tip[1] + 12 * Math.sin(angle + 0.4));
    ctx.stroke();
  }
  const anchor = c[c.length - 1];
  if (!anchor) return;
  ctx.font = "13px system-ui, sans-serif";
  lines.forEach((line, i) => {
    ctx.lineWidth = 3;
    ctx.strokeStyle = "#000";
    ctx.strokeText(line, anchor[0] + 8, anchor[1] + 4 + i * 15);
    ctx.fillText(line, anchor[0] + 8, anchor[1] + 4 + i * 15);
  });
}

/**
 * Draws unless the bitmap was already released (a newer frame replaced it): an exception thrown
 * in an effect stops Preact from rendering that part of the page again, so a stale frame must
 * never get that far.
 */
function drawSafely(draw: () => void): void {
  try {
    draw();
  } catch (error) {
    if (!(error instanceof DOMException && error.name === "InvalidStateError")) throw error;
  }
}
