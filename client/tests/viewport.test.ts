import { describe, expect, it } from "vitest";
import {
  canvasToImage,
  cineNext,
  fitScale,
  canvasToPixel,
  frameMapping,
  geometryOf,
  imageToCanvas,
  initialView,
  panFractions,
  panPixels,
  pixelToCanvas,
  placeFrame,
  panBy,
  resetView,
  rotateRight,
  scrollBy,
  windowDrag,
  zoomAt,
  type View,
} from "../src/viewport";

const image = { width: 512, height: 256 };
const canvas = { width: 800, height: 800 };

function close(a: [number, number], b: [number, number]) {
  expect(a[0]).toBeCloseTo(b[0], 6);
  expect(a[1]).toBeCloseTo(b[1], 6);
}

describe("viewport geometry", () => {
  it("fits the image and centres it", () => {
    const view = initialView(40, 400);
    expect(fitScale(image, canvas, 0)).toBeCloseTo(800 / 512);
    close(imageToCanvas(view, image, canvas, [256, 128]), [400, 400]);
    close(imageToCanvas(view, image, canvas, [0, 0]), [0, 400 - 128 * (800 / 512)]);
  });

  it("puts pixel centres at integer image coordinates, as the server measures them", () => {
    const view = initialView(40, 400);
    const small = { width: 128, height: 128 };
    const square = { width: 512, height: 512 };
    // Pixel 64 spans canvas [256, 260) at scale 4: its centre is 258, and any click inside it
    // rounds to 64.
    close(pixelToCanvas(view, small, square, [64, 64]), [258, 258]);
    close(canvasToPixel(view, small, square, [256.1, 259.9]), [63.525, 64.475]);
    close(canvasToPixel(view, small, square, pixelToCanvas(view, small, square, [10.25, 99])), [10.25, 99]);
  });

  it("sends pan as canvas fractions and reads it back in image pixels", () => {
    const view = { ...initialView(40, 400), zoom: 2, panX: 32, panY: -16 };
    const small = { width: 128, height: 128 };
    const wide = { width: 800, height: 400 };
    // scale = min(800, 400) / 128 * 2 = 6.25: 32 px -> 200 canvas px = 0.25 of the width.
    const fractions = panFractions(view, small, wide);
    expect(fractions[0]).toBeCloseTo(0.25);
    expect(fractions[1]).toBeCloseTo(-0.25);
    close(panPixels(fractions, view, small, wide), [32, -16]);
    const { view: back, canvas: size } = geometryOf({ zoom: 2, pan: fractions, canvas: [800, 400] }, small);
    expect(size).toEqual(wide);
    close([back.panX, back.panY], [32, -16]);
  });

  it("places another canvas's frame fitted and centred, and maps pixels onto it", () => {
    expect(placeFrame({ width: 800, height: 400 }, { width: 400, height: 400 })).toEqual({ scale: 0.5, dx: 0, dy: 100 });
    const small = { width: 128, height: 128 };
    // The presenter's 512x512 canvas shown on a 256x256 one: pixel 64's centre is at 258 / 2.
    const map = frameMapping({ zoom: 1, canvas: [512, 512] }, small, { width: 256, height: 256 });
    close(map.toCanvas([64, 64]), [129, 129]);
    close(map.toPixel(map.toCanvas([10.5, 99])), [10.5, 99]);
    const rotated = frameMapping({ zoom: 1.5, rotation: 90, flip_h: true, pan: [0.1, -0.2], canvas: [640, 480] }, small, { width: 300, height: 300 });
    close(rotated.toPixel(rotated.toCanvas([3, 120])), [3, 120]);
  });

  it("rotates clockwise by 90 degrees and refits the swapped sides", () => {
    const view = rotateRight(initialView(40, 400));
    expect(view.rotation).toBe(90);
    const s = 800 / 512; // rotated: 256 wide, 512 tall -> limited by height
    close(imageToCanvas(view, image, canvas, [0, 0]), [400 + 128 * s, 400 - 256 * s]);
  });

  it("flips horizontally about the centre", () => {
    const view: View = { ...initialView(40, 400), flipH: true };
    close(imageToCanvas(view, image, canvas, [0, 128]), [800, 400]);
  });

  it("maps canvas points back to the same image points under any transform", () => {
    const views: View[] = [
      initialView(0, 1),
      { ...initialView(0, 1), rotation: 270, flipV: true, zoom: 2.5, panX: 13, panY: -7 },
      { ...initialView(0, 1), rotation: 180, flipH: true, zoom: 0.3 },
    ];
    for (const view of views) {
      for (const p of [[0, 0], [511, 255], [100.5, 20.25]] as Array<[number, number]>) {
        close(canvasToImage(view, image, canvas, imageToCanvas(view, image, canvas, p)), p);
      }
    }
  });

  it("zooms about the cursor, keeping the image point under it", () => {
    const view = initialView(0, 1);
    const anchor: [number, number] = [600, 300];
    const before = canvasToImage(view, image, canvas, anchor);
    const zoomed = zoomAt(view, image, canvas, 2, anchor);
    expect(zoomed.zoom).toBe(2);
    close(imageToCanvas(zoomed, image, canvas, before), anchor);
  });

  it("pans by canvas pixels", () => {
    const view = panBy(initialView(0, 1), image, canvas, 50, -20);
    close(imageToCanvas(view, image, canvas, [256, 128]), [450, 380]);
  });
});

describe("viewport tools", () => {
  it("drags the window: right widens, down raises the centre, never below width 1", () => {
    const view = initialView(40, 400);
    const dragged = windowDrag(view, 10, 5);
    expect(dragged.width).toBeGreaterThan(400);
    expect(dragged.center).toBeGreaterThan(40);
    expect(windowDrag(view, -100000, 0).width).toBe(1);
  });

  it("scrolls within the stack and cine wraps", () => {
    const view = initialView(0, 1, 3);
    expect(scrollBy(view, 10, 5).index).toBe(4);
    expect(scrollBy(view, -10, 5).index).toBe(0);
    expect(cineNext({ ...view, index: 4 }, 5).index).toBe(0);
  });

  it("resets everything but the slice", () => {
    const messy: View = { ...initialView(1, 2, 7), zoom: 3, rotation: 90, invert: true, flipH: true, panX: 9 };
    expect(resetView(messy, 40, 400)).toEqual(initialView(40, 400, 7));
  });
});
