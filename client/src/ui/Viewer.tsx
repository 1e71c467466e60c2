import { useCallback, useEffect, useMemo, useRef, useState } from "preact/hooks";
import type { Connection } from "../connection";
import { loadStudy, renderInfo, slicesOf, thumbnailPath, type RenderInfo, type SeriesInfo, type Slice } from "../dicomweb";
import { ApiFailure } from "../protocol/errors";
import type { AnnotationsKind, RoomsViewport } from "../protocol/generated";
import type { RoomState } from "../room";
import { RoomClient } from "../roomClient";
import type { Session } from "../session";
import {
  cineIntervalMs,
  cineNext,
  initialView,
  panFractions,
  panPixels,
  resetView,
  rotateRight,
  scrollBy,
  scrollTo,
  type Point,
  type Rotation,
  type Size,
  type View,
} from "../viewport";
import { ChatPanel, ParticipantsBar, ReportPanel, colourFor } from "./Collab";
import { MEASURE_TOOLS, Pane, labelOf, positions, type LiveFrame, type PaneMode, type PaneState, type Tool } from "./Pane";

type Layout = "1x1" | "1x2" | "2x2";
const PANES: Record<Layout, number> = { "1x1": 1, "1x2": 2, "2x2": 4 };
const TOOLS: Array<[Tool, string]> = [
  ["wl", "W/L"], ["pan", "Pan"], ["zoom", "Zoom"], ["length", "Length"], ["angle", "Angle"], ["cobb", "Cobb"],
  ["rectangle", "Rect ROI"], ["ellipse", "Ellipse ROI"], ["probe", "Probe"], ["arrow", "Arrow"], ["text", "Text"],
];
const PRESENCE_MS = 100;

function newPane(series: number, slices: number): PaneState {
  return { series, mode: "stack", slabMm: 0, view: initialView(0, 0, Math.floor(slices / 2)) };
}

export function Viewer({ session, connection, studyUid }: { session: Session; connection: Connection; studyUid: string }) {
  const [series, setSeries] = useState<SeriesInfo[]>([]);
  const [infos, setInfos] = useState<Record<string, RenderInfo>>({});
  const [error, setError] = useState<string | null>(null);
  const [layout, setLayout] = useState<Layout>("1x1");
  const [panes, setPanes] = useState<PaneState[]>([]);
  const [active, setActive] = useState(0);
  const [tool, setTool] = useState<Tool>("wl");
  const [draft, setDraft] = useState<Point[]>([]);
  const [fps, setFps] = useState(10);
  const [playing, setPlaying] = useState(false);
  const [room, setRoom] = useState<RoomClient | null>(null);
  const [roomState, setRoomState] = useState<RoomState | null>(null);
  const [roomProblem, setRoomProblem] = useState<string | null>(null);
  const [following, setFollowing] = useState(false);
  const [live, setLive] = useState<LiveFrame | null>(null);
  const [thumbs, setThumbs] = useState<Record<string, string>>({});
  const canvasSizes = useRef<Record<number, Size>>({});
  const me = session.user;

  const slices = useMemo(() => series.map(slicesOf), [series]);

  useEffect(() => {
    let cancelled = false;
    setError(null);
    loadStudy(session, studyUid)
      .then((loaded) => {
        if (cancelled) return;
        setSeries(loaded);
        setPanes([newPane(0, loaded[0] ? slicesOf(loaded[0]).length : 0)]);
        if (loaded.length === 0) setError("This study has no images yet.");
      })
      .catch((failure) => !cancelled && setError(failure instanceof ApiFailure ? failure.message : "The study could not be loaded."));
    return () => {
      cancelled = true;
    };
  }, [session, studyUid]);

  // Thumbnails and render info (presets, size) per series.
  useEffect(() => {
    const urls: string[] = [];
    for (const s of series) {
      const path = thumbnailPath(studyUid, s);
      if (path) {
        session.blob(path).then((blob) => {
          const url = URL.createObjectURL(blob);
          urls.push(url);
          setThumbs((t) => ({ ...t, [s.uid]: url }));
        }).catch(() => undefined);
      }
      const first = s.instances[0];
      if (first) renderInfo(session, first.sop).then((info) => setInfos((i) => ({ ...i, [s.uid]: info }))).catch(() => undefined);
    }
    return () => urls.forEach((url) => URL.revokeObjectURL(url));
  }, [series, session, studyUid]);

  // The study room: join, follow its state, leave on exit.
  useEffect(() => {
    const client = new RoomClient(connection, studyUid);
    setRoom(client);
    const off = client.subscribe(setRoomState);
    client.join().catch((failure) =>
      setRoomProblem(
        failure instanceof ApiFailure && failure.code === "unknown_event"
          ? "Live collaboration is not available on this server; you are reading alone."
          : failure instanceof ApiFailure
            ? failure.message
            : "Could not join the study room.",
      ),
    );
    return () => {
      off();
      client.leave();
      setRoom(null);
      setRoomState(null);
    };
  }, [connection, studyUid]);

  const paneCount = PANES[layout];
  useEffect(() => {
    setPanes((current) => {
      if (current.length === 0) return current;
      const next = current.slice(0, paneCount);
      while (next.length < paneCount) {
        const index = Math.min(next.length, series.length - 1);
        next.push(newPane(Math.max(0, index), slices[Math.max(0, index)]?.length ?? 0));
      }
      return next;
    });
    setActive((a) => Math.min(a, paneCount - 1));
  }, [paneCount, series.length]);

  const setView = useCallback((index: number, view: View) => {
    setPanes((current) => current.map((p, i) => (i === index ? { ...p, view } : p)));
  }, []);

  const updateActive = (change: (pane: PaneState) => PaneState) =>
    setPanes((current) => current.map((p, i) => (i === active ? change(p) : p)));

  const activePane = panes[active];
  const activeSeries = activePane ? series[activePane.series] ?? null : null;
  const activeInfo = activeSeries ? infos[activeSeries.uid] ?? null : null;
  const activeSlices = activePane ? slices[activePane.series] ?? [] : [];
  const activeCount = activePane ? positions(activePane.mode, activeSlices, activeInfo) : 0;

  const viewportOf = useCallback((): RoomsViewport | null => {
    if (!activePane || !activeSeries) return null;
    const slice = activeSlices[activePane.view.index];
    const size = canvasSizes.current[active] ?? { width: 512, height: 512 };
    const v = activePane.view;
    const viewport: RoomsViewport = {
      series_uid: activeSeries.uid,
      frame: slice?.frame ?? 0,
      zoom: v.zoom,
      rotation: v.rotation,
      flip_h: v.flipH,
      flip_v: v.flipV,
      invert: v.invert,
      layout,
      canvas: [Math.min(4096, Math.max(16, size.width)), Math.min(4096, Math.max(16, size.height))],
    };
    if (slice) viewport.instance_uid = slice.sop;
    if (activeInfo) {
      const [x, y] = panFractions(v, { width: activeInfo.columns, height: activeInfo.rows }, size);
      viewport.pan = [clampPan(x), clampPan(y)];
    }
    if (v.width > 0) {
      viewport.window_center = v.center;
      viewport.window_width = v.width;
    }
    return viewport;
  }, [activePane, activeSeries, activeSlices, activeInfo, active, layout]);

  // Presence: tell the room where this reader is (the presenter's view reaches followers).
  useEffect(() => {
    if (!room) return;
    const timer = setTimeout(() => room.presence(viewportOf()), PRESENCE_MS);
    return () => clearTimeout(timer);
  }, [room, viewportOf]);

  const restore = useCallback(
    (viewport: RoomsViewport) => {
      const seriesIndex = series.findIndex((s) => s.uid === viewport.series_uid);
      if (seriesIndex < 0) return;
      const list = slices[seriesIndex] ?? [];
      const sliceIndex = list.findIndex((s: Slice) => s.sop === viewport.instance_uid && s.frame === (viewport.frame ?? 0));
      setPanes((current) =>
        current.map((p, i) => {
          if (i !== active) return p;
          const v = p.series === seriesIndex ? p.view : initialView(0, 0);
          const info = infos[series[seriesIndex]?.uid ?? ""];
          const geometry = { ...v, zoom: viewport.zoom ?? v.zoom, rotation: (viewport.rotation ?? v.rotation) as Rotation };
          const size = canvasSizes.current[i] ?? { width: 512, height: 512 };
          const [panX, panY] = info && viewport.pan
            ? panPixels(viewport.pan, geometry, { width: info.columns, height: info.rows }, size)
            : [v.panX, v.panY];
          return {
            ...p,
            series: seriesIndex,
            mode: "stack",
            view: {
              ...v,
              index: sliceIndex >= 0 ? sliceIndex : v.index,
              center: viewport.window_center ?? v.center,
              width: viewport.window_width ?? v.width,
              zoom: viewport.zoom ?? v.zoom,
              panX,
              panY,
              rotation: (viewport.rotation ?? v.rotation) as Rotation,
              flipH: viewport.flip_h ?? v.flipH,
              flipV: viewport.flip_v ?? v.flipV,
              invert: viewport.invert ?? v.invert,
            },
          };
        }),
      );
    },
    [series, slices, infos, active],
  );

  // Following: adopt the presenter's viewport as it moves.
  useEffect(() => {
    if (!room || !following) return;
    const presenterId = roomState?.presenter?.user_id;
    const current = roomState?.participants.find((p) => p.user_id === presenterId && p.viewport)?.viewport;
    if (current) {
      restore(current);
      room.render(current);
    }
    return room.onFollowViewport((viewport, _presenter, node) => {
      restore(viewport);
      // The presenter's node renders for the followers it holds; a follower on another node
      // asks its own.
      if (node !== undefined && node !== room.node) room.render(viewport);
    });
  }, [room, following, restore, roomState?.presenter?.user_id]);

  // While following, the active pane shows the frames the server sends over the room: one
  // render of the presenter's view for all of this node's followers, no HTTP fetch per reader.
  useEffect(() => {
    if (!room || !following) return;
    const off = room.onFrame(async ({ meta, data }) => {
      const bitmap = await createImageBitmap(new Blob([data], { type: meta.content_type }));
      setLive({ bitmap, meta, count: room.framesReceived });
    });
    return () => {
      off();
      setLive(null);
    };
  }, [room, following]);
  // A frame's bitmap is closed only once another frame (or none) has been rendered in its place.
  // Closing it inside the state updater, as before, could close the bitmap being shown (Preact
  // may run an updater twice); drawing it then threw in the pane's effect, and after that error
  // the viewer stopped re-rendering: a colleague's measurement never appeared.
  useEffect(() => () => live?.bitmap.close(), [live]);

  useEffect(() => {
    if (following && (!roomState?.presenter || roomState.presenter.username === me?.username)) void setFollow(false);
  }, [roomState?.presenter]);

  const setFollow = async (value: boolean) => {
    setFollowing(value);
    try {
      await room?.setFollowing(value);
    } catch (failure) {
      setRoomProblem(failure instanceof ApiFailure ? failure.message : "Could not change follow mode.");
    }
  };

  // Cine.
  useEffect(() => {
    if (!playing || !activePane) return;
    const timer = setInterval(() => {
      setPanes((current) => current.map((p, i) => (i === active ? { ...p, view: cineNext(p.view, activeCount) } : p)));
    }, cineIntervalMs(fps));
    return () => clearInterval(timer);
  }, [playing, fps, active, activeCount]);

  const applyPreset = (index: number) => {
    const preset = activeInfo?.presets[index];
    if (preset) updateActive((p) => ({ ...p, view: { ...p.view, center: preset.center, width: preset.width } }));
  };

  const reset = () => updateActive((p) => ({ ...p, view: resetView(p.view, 0, 0) }));

  // Send a finished measurement to the server; its values come back measured there.
  useEffect(() => {
    const needed = MEASURE_TOOLS[tool];
    if (!needed || draft.length < needed || !room || !activePane || !activeSeries) return;
    const slice = activeSlices[activePane.view.index];
    const points = draft.slice(0, needed).map(([x, y]) => [round2(x), round2(y)]);
    setDraft([]);
    if (!slice) return;
    let text: string | undefined;
    if (tool === "text") {
      text = window.prompt("Text")?.slice(0, 500) ?? undefined;
      if (!text) return;
    }
    const payload = {
      kind: tool as AnnotationsKind,
      series_uid: activeSeries.uid,
      instance_uid: slice.sop,
      frame: slice.frame,
      points,
      ...(text ? { text } : {}),
    };
    room.annotate(payload).catch((failure) => setRoomProblem(failure instanceof ApiFailure ? failure.message : "The annotation was not saved."));
  }, [draft, tool]);

  const markKeyImage = () => {
    const slice = activePane ? activeSlices[activePane.view.index] : undefined;
    if (!room || !slice || !activeSeries) return;
    room.annotate({ kind: "key_image", series_uid: activeSeries.uid, instance_uid: slice.sop, frame: slice.frame, points: [] })
      .catch((failure) => setRoomProblem(failure instanceof ApiFailure ? failure.message : "Could not mark the key image."));
  };

  // Keyboard shortcuts readers expect.
  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      const target = event.target as HTMLElement | null;
      if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.isContentEditable)) return;
      if (!activePane) return;
      const scroll = (delta: number) => updateActive((p) => ({ ...p, view: scrollBy(p.view, delta, activeCount) }));
      let handled = true;
      switch (event.key) {
        case "ArrowUp": case "ArrowLeft": scroll(-1); break;
        case "ArrowDown": case "ArrowRight": scroll(1); break;
        case "PageUp": scroll(-10); break;
        case "PageDown": scroll(10); break;
        case "Home": updateActive((p) => ({ ...p, view: scrollTo(p.view, 0, activeCount) })); break;
        case "End": updateActive((p) => ({ ...p, view: scrollTo(p.view, activeCount - 1, activeCount) })); break;
        case "Escape": setDraft([]); setTool("wl"); break;
        case "i": updateActive((p) => ({ ...p, view: { ...p.view, invert: !p.view.invert } })); break;
        case "r": updateActive((p) => ({ ...p, view: rotateRight(p.view) })); break;
        case "h": updateActive((p) => ({ ...p, view: { ...p.view, flipH: !p.view.flipH } })); break;
        case "v": updateActive((p) => ({ ...p, view: { ...p.view, flipV: !p.view.flipV } })); break;
        case "0": reset(); break;
        case "c": setPlaying((x) => !x); break;
        case "k": markKeyImage(); break;
        default:
          if (/^[1-9]$/.test(event.key)) applyPreset(Number(event.key) - 1);
          else handled = false;
      }
      if (handled) event.preventDefault();
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  });

  const annotations = roomState?.annotations ?? [];
  const others = (roomState?.participants ?? []).filter((p) => p.sid !== connection.socket.id && p.cursor);
  const colourOf = (userId: string) => colourFor(roomState?.participants ?? [], userId);
  const activeSlice = activePane ? activeSlices[activePane.view.index] : undefined;
  const visibleMeasurements = annotations.filter((a) => activeSlice && a.instance_uid === activeSlice.sop && a.frame === activeSlice.frame);
  const lastCursor = useRef(0);

  return (
    <div class="viewer" data-testid="viewer">
      <div class="toolbar" role="toolbar" aria-label="Viewer tools">
        {TOOLS.map(([id, label]) => (
          <button type="button" key={id} class={tool === id ? "on" : ""} aria-pressed={tool === id} data-testid={`tool-${id}`}
            onClick={() => { setTool(id); setDraft([]); }}>{label}</button>
        ))}
        <span class="sep" />
        {(activeInfo?.presets ?? []).map((p, i) => (
          <button type="button" key={p.name} data-testid={`preset-${p.name}`} title={`${i + 1}: W ${p.width} L ${p.center}`} onClick={() => applyPreset(i)}>
            {i + 1} {p.label}
          </button>
        ))}
        <span class="sep" />
        <button type="button" data-testid="invert" onClick={() => updateActive((p) => ({ ...p, view: { ...p.view, invert: !p.view.invert } }))}>Invert</button>
        <button type="button" data-testid="rotate" onClick={() => updateActive((p) => ({ ...p, view: rotateRight(p.view) }))}>Rotate</button>
        <button type="button" data-testid="flip-h" onClick={() => updateActive((p) => ({ ...p, view: { ...p.view, flipH: !p.view.flipH } }))}>Flip H</button>
        <button type="button" data-testid="flip-v" onClick={() => updateActive((p) => ({ ...p, view: { ...p.view, flipV: !p.view.flipV } }))}>Flip V</button>
        <button type="button" data-testid="reset" onClick={reset}>Reset</button>
        <button type="button" data-testid="key-image" onClick={markKeyImage}>Key image</button>
        <span class="sep" />
        <button type="button" data-testid="cine" class={playing ? "on" : ""} onClick={() => setPlaying(!playing)}>{playing ? "Stop" : "Cine"}</button>
        <label>fps <input type="number" min={1} max={60} value={fps} class="narrow" onInput={(e) => setFps(Number((e.target as HTMLInputElement).value) || 1)} /></label>
        <span class="sep" />
        <select value={layout} aria-label="Layout" data-testid="layout" onChange={(e) => setLayout((e.target as HTMLSelectElement).value as Layout)}>
          <option value="1x1">1×1</option><option value="1x2">1×2</option><option value="2x2">2×2</option>
        </select>
        <select value={activePane?.mode ?? "stack"} aria-label="Plane" data-testid="plane"
          onChange={(e) => updateActive((p) => {
            const mode = (e.target as HTMLSelectElement).value as PaneMode;
            const count = positions(mode, slices[p.series] ?? [], infos[series[p.series]?.uid ?? ""] ?? null);
            return { ...p, mode, view: { ...p.view, index: Math.floor(count / 2) } };
          })}>
          <option value="stack">Stack</option><option value="axial">Axial</option><option value="sagittal">Sagittal</option><option value="coronal">Coronal</option>
        </select>
        <label>MIP slab <input type="number" min={0} max={200} step={1} value={activePane?.slabMm ?? 0} class="narrow" data-testid="slab"
          onInput={(e) => updateActive((p) => ({ ...p, slabMm: Math.max(0, Number((e.target as HTMLInputElement).value) || 0) }))} /> mm</label>
      </div>
      {room && roomState && me && (
        <ParticipantsBar room={room} state={roomState} meUsername={me.username} following={following}
          onFollow={(f) => void setFollow(f)} onProblem={setRoomProblem} />
      )}
      {(error || roomProblem) && <p class="error" role="alert" data-testid="viewer-error">{error ?? roomProblem}</p>}
      <div class="viewer-body">
        <aside class="thumbnails" aria-label="Series">
          {series.map((s, index) => (
            <button type="button" key={s.uid} class={`thumb${activePane?.series === index ? " on" : ""}`} data-testid="series-thumb"
              onClick={() => updateActive((p) => ({ ...newPane(index, slices[index]?.length ?? 0) , mode: p.mode === "stack" ? "stack" : p.mode }))}>
              {thumbs[s.uid] ? <img src={thumbs[s.uid]} alt="" /> : <span class="thumb-blank" />}
              <span>{s.modality} {s.number}: {s.description || "(no description)"}</span>
              <small>{slices[index]?.length ?? 0} images</small>
            </button>
          ))}
        </aside>
        <div class={`panes layout-${layout}`}>
          {panes.map((pane, index) => (
            <Pane key={index} session={session} series={series[pane.series] ?? null} slices={slices[pane.series] ?? []}
              info={infos[series[pane.series]?.uid ?? ""] ?? null} pane={pane} active={index === active} tool={tool}
              draft={index === active ? draft : []} live={index === active && following ? live : null}
              following={index === active && following} annotations={annotations} cursors={others} colourOf={colourOf}
              onActivate={() => setActive(index)} onView={(view) => setView(index, view)} onDraft={setDraft}
              onCanvas={(size) => { canvasSizes.current[index] = size; }}
              onCursor={(point, slice) => {
                const now = performance.now();
                if (!room || now - lastCursor.current < 50) return;
                lastCursor.current = now;
                room.presence(null, point && slice ? { instance_uid: slice.sop, frame: slice.frame, x: round2(point[0]), y: round2(point[1]) } : null);
              }} />
          ))}
        </div>
        <aside class="side">
          <section class="measurements" aria-label="Measurements">
            <h3>Measurements on this image</h3>
            <ul>
              {visibleMeasurements.map((a) => (
                <li key={a.id} data-testid="measurement">
                  <span class="dot" ref={(el) => { if (el) el.style.background = colourOf(a.author.user_id); }} />
                  {a.kind} <span data-testid="measurement-label">{labelOf(a).join(" · ")}</span>
                  <small> by {a.author.username}</small>
                  {a.author.username === me?.username && (
                    <button type="button" class="small" onClick={() => room?.deleteAnnotation(a).catch(() => undefined)}>Delete</button>
                  )}
                </li>
              ))}
            </ul>
          </section>
          {room && roomState && (
            <>
              <ChatPanel room={room} messages={roomState.chat} me={me?.username ?? ""} currentViewport={viewportOf} onRestore={restore} />
              <ReportPanel room={room} readOnly={me?.role === "referring_physician" || me?.role === "technician"} />
            </>
          )}
        </aside>
      </div>
    </div>
  );
}

function round2(value: number): number {
  return Math.round(value * 100) / 100;
}

/** The render engine takes pan within ±16 canvases; the protocol within ±100. */
function clampPan(value: number): number {
  return Math.max(-16, Math.min(16, value));
}
