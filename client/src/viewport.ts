/**
 * Viewport math for one pane: which slice, the window, and how the server-rendered image sits on
 * the canvas (zoom, pan, rotation, flips). The server renders pixels (window/level, invert); the
 * geometric transform is applied here, so image coordinates (what annotations and cursors are
 * stored in) map to the canvas and back exactly.
 */

import type { RoomsViewport } from "./protocol/generated";

export type Rotation = 0 | 90 | 180 | 270;

export interface View {
  index: number;
  center: number;
  width: number;
  zoom: number;
  /** Offset of the image centre from the canvas centre, in image pixels (screen-aligned). */
  panX: number;
  panY: number;
  rotation: Rotation;
  flipH: boolean;
  flipV: boolean;
  invert: boolean;
}

export interface Size {
  width: number;
  height: number;
}

export type Point = [number, number];

export const MIN_ZOOM = 0.05;
export const MAX_ZOOM = 64;

export function initialView(center: number, width: number, index = 0): View {
  return { index, center, width, zoom: 1, panX: 0, panY: 0, rotation: 0, flipH: false, flipV: false, invert: false };
}

/** Back to the first look at the current slice: default window, fitted, unrotated. */
export function resetView(view: View, center: number, width: number): View {
  return initialView(center, width, view.index);
}

function rotated(image: Size, rotation: Rotation): Size {
  return rotation === 90 || rotation === 270 ? { width: image.height, height: image.width } : image;
}

/** The scale that fits the (rotated) image into the canvas. */
export function fitScale(image: Size, canvas: Size, rotation: Rotation): number {
  const r = rotated(image, rotation);
  if (r.width <= 0 || r.height <= 0) return 1;
  return Math.min(canvas.width / r.width, canvas.height / r.height);
}

export function scaleOf(view: View, image: Size, canvas: Size): number {
  return fitScale(image, canvas, view.rotation) * view.zoom;
}

/** The canvas transform `[a, b, c, d, e, f]` (as for CanvasRenderingContext2D.setTransform). */
export function transform(view: View, image: Size, canvas: Size): [number, number, number, number, number, number] {
  const s = scaleOf(view, image, canvas);
  const theta = (view.rotation * Math.PI) / 180;
  const cos = Math.round(Math.cos(theta));
  const sin = Math.round(Math.sin(theta));
  const fx = (view.flipH ? -1 : 1) * s;
  const fy = (view.flipV ? -1 : 1) * s;
  const a = cos * fx;
  const b = sin * fx;
  const c = -sin * fy;
  const d = cos * fy;
  const cx = image.width / 2;
  const cy = image.height / 2;
  const e = canvas.width / 2 + view.panX * s - (a * cx + c * cy);
  const f = canvas.height / 2 + view.panY * s - (b * cx + d * cy);
  return [a, b, c, d, e, f];
}

export function imageToCanvas(view: View, image: Size, canvas: Size, p: Point): Point {
  const [a, b, c, d, e, f] = transform(view, image, canvas);
  return [a * p[0] + c * p[1] + e, b * p[0] + d * p[1] + f];
}

export function canvasToImage(view: View, image: Size, canvas: Size, p: Point): Point {
  const [a, b, c, d, e, f] = transform(view, image, canvas);
  const det = a * d - b * c;
  const x = p[0] - e;
  const y = p[1] - f;
  return [(d * x - c * y) / det, (-b * x + a * y) / det];
}

/**
 * Annotations, cursors and measurements are in the server's image coordinates, where pixel
 * centres are at integers; on the canvas the image is drawn with pixel i spanning [i, i + 1].
 * These two convert between the two conventions (the half-pixel matters to a probe).
 */
export function pixelToCanvas(view: View, image: Size, canvas: Size, p: Point): Point {
  return imageToCanvas(view, image, canvas, [p[0] + 0.5, p[1] + 0.5]);
}

export function canvasToPixel(view: View, image: Size, canvas: Size, p: Point): Point {
  const [x, y] = canvasToImage(view, image, canvas, p);
  return [x - 0.5, y - 0.5];
}

/**
 * A room viewport carries pan as fractions of its canvas (as the render engine takes it), so a
 * follower with another screen size sees the same part of the image; a View pans in image
 * pixels. These convert between the two for a given image and canvas.
 */
export function panFractions(view: View, image: Size, canvas: Size): [number, number] {
  const s = scaleOf(view, image, canvas);
  return [(view.panX * s) / canvas.width, (view.panY * s) / canvas.height];
}

export function panPixels(fractions: readonly number[], view: View, image: Size, canvas: Size): [number, number] {
  const s = scaleOf(view, image, canvas);
  return [((fractions[0] ?? 0) * canvas.width) / s, ((fractions[1] ?? 0) * canvas.height) / s];
}

/** The geometry of a room viewport as a View (window and slice do not matter here). */
export function geometryOf(viewport: RoomsViewport, image: Size): { view: View; canvas: Size } {
  const canvas = { width: viewport.canvas?.[0] ?? image.width, height: viewport.canvas?.[1] ?? image.height };
  const base: View = {
    ...initialView(0, 0),
    zoom: viewport.zoom ?? 1,
    rotation: (viewport.rotation ?? 0) as Rotation,
    flipH: viewport.flip_h ?? false,
    flipV: viewport.flip_v ?? false,
  };
  const [panX, panY] = panPixels(viewport.pan ?? [0, 0], base, image, canvas);
  return { view: { ...base, panX, panY }, canvas };
}

/** Where a frame rendered for another canvas (the presenter's) sits on this one: fitted, centred. */
export interface Placement {
  scale: number;
  dx: number;
  dy: number;
}

export function placeFrame(frame: Size, canvas: Size): Placement {
  const scale = Math.min(canvas.width / frame.width, canvas.height / frame.height);
  return { scale, dx: (canvas.width - frame.width * scale) / 2, dy: (canvas.height - frame.height * scale) / 2 };
}

/** Image pixels to this canvas and back, for a frame the server rendered for `viewport`. */
export function frameMapping(viewport: RoomsViewport, image: Size, canvas: Size): { toCanvas: (p: Point) => Point; toPixel: (c: Point) => Point } {
  const geometry = geometryOf(viewport, image);
  const place = placeFrame(geometry.canvas, canvas);
  return {
    toCanvas: (p) => {
      const [x, y] = pixelToCanvas(geometry.view, image, geometry.canvas, p);
      return [place.dx + x * place.scale, place.dy + y * place.scale];
    },
    toPixel: (c) => canvasToPixel(geometry.view, image, geometry.canvas, [(c[0] - place.dx) / place.scale, (c[1] - place.dy) / place.scale]),
  };
}

/** Drag right widens the window, drag down raises the centre; faster for wide windows. */
export function windowDrag(view: View, dx: number, dy: number): View {
  const k = Math.max(0.5, view.width / 256);
  return { ...view, width: Math.max(1, view.width + dx * k), center: view.center + dy * k };
}

export function scrollTo(view: View, index: number, count: number): View {
  const clamped = Math.min(Math.max(0, Math.round(index)), Math.max(0, count - 1));
  return clamped === view.index ? view : { ...view, index: clamped };
}

export function scrollBy(view: View, delta: number, count: number): View {
  return scrollTo(view, view.index + delta, count);
}

/** Zoom by `factor` keeping the image point under `anchor` (canvas px) where it is. */
export function zoomAt(view: View, image: Size, canvas: Size, factor: number, anchor: Point): View {
  const zoom = Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, view.zoom * factor));
  const before = canvasToImage(view, image, canvas, anchor);
  const next = { ...view, zoom };
  const landed = imageToCanvas(next, image, canvas, before);
  const s = scaleOf(next, image, canvas);
  return { ...next, panX: next.panX + (anchor[0] - landed[0]) / s, panY: next.panY + (anchor[1] - landed[1]) / s };
}

export function panBy(view: View, image: Size, canvas: Size, dx: number, dy: number): View {
  const s = scaleOf(view, image, canvas);
  return { ...view, panX: view.panX + dx / s, panY: view.panY + dy / s };
}

export function rotateRight(view: View): View {
  return { ...view, rotation: ((view.rotation + 90) % 360) as Rotation };
}

/** Cine: the next slice at a given frame rate, wrapping at the end. */
export function cineNext(view: View, count: number): View {
  return count <= 1 ? view : { ...view, index: (view.index + 1) % count };
}

export function cineIntervalMs(fps: number): number {
  return 1000 / Math.min(60, Math.max(1, fps));
}
