"""Reading pixels back from the viewer's canvas (the image is same-origin, so not tainted)."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Locator, Page

# Maps an image point to the canvas the way the viewer does at zoom 1, no pan or rotation:
# the image is fitted and centred.
_PIXEL_AT = """([canvas, x, y, size]) => {
  const s = Math.min(canvas.width / size, canvas.height / size);
  const cx = canvas.width / 2 + (x + 0.5 - size / 2) * s;
  const cy = canvas.height / 2 + (y + 0.5 - size / 2) * s;
  const pixel = canvas.getContext("2d").getImageData(Math.floor(cx), Math.floor(cy), 1, 1);
  return Array.from(pixel.data);
}"""

_SIGNATURE = """(canvas) => {
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let sum = 0, lit = 0;
  for (let i = 0; i < data.length; i += 4) { sum += data[i]; if (data[i] > 8) lit += 1; }
  return { sum, lit, pixels: data.length / 4 };
}"""


def canvas_of(page: Page, index: int = 0) -> Locator:
    return page.get_by_test_id("viewer-canvas").nth(index)


def grey_at(page: Page, x: float, y: float, size: int, index: int = 0) -> int:
    handle = canvas_of(page, index).element_handle()
    rgba: list[int] = page.evaluate(_PIXEL_AT, [handle, x, y, size])
    assert rgba[0] == rgba[1] == rgba[2], rgba
    return rgba[0]


def signature(page: Page, index: int = 0) -> dict[str, Any]:
    result: dict[str, Any] = canvas_of(page, index).evaluate(_SIGNATURE)
    return result


def wait_drawn(page: Page, index: int = 0, *, not_key: str = "", containing: str = "") -> str:
    """Waits until the pane has drawn a full-quality frame other than ``not_key`` whose request
    contains ``containing``."""
    canvas = canvas_of(page, index)
    page.wait_for_function(
        """([canvas, old, part]) => {
             const drawn = canvas.dataset.drawn || "";
             const final = drawn.includes("quality=final");
             return drawn && drawn !== old && final && drawn.includes(part);
           }""",
        arg=[canvas.element_handle(), not_key, containing],
    )
    return str(canvas.get_attribute("data-drawn"))


def click_pixel(page: Page, x: float, y: float, size: int, index: int = 0) -> None:
    """Clicks the centre of image pixel (x, y) at zoom 1, no pan or rotation."""
    canvas = canvas_of(page, index)
    box = canvas.bounding_box()
    assert box is not None
    width, height = (
        float(canvas.evaluate("(c) => c.width")),
        float(canvas.evaluate("(c) => c.height")),
    )
    s = min(width / size, height / size)
    cx = width / 2 + (x + 0.5 - size / 2) * s
    cy = height / 2 + (y + 0.5 - size / 2) * s
    page.mouse.click(box["x"] + cx * box["width"] / width, box["y"] + cy * box["height"] / height)
