"""Both edges (HTTP query, Socket.IO payload) build the same render keys and refuse bad input
with the same codes."""

import math

import pytest
from multidict import MultiDict

from server.render.errors import (
    FRAME_OUT_OF_RANGE,
    INVALID_CANVAS,
    INVALID_QUALITY,
    INVALID_VIEWPORT,
    INVALID_WINDOW,
    RenderError,
)
from server.render.models import Quality, RenderRequest
from server.render.params import (
    parse_frame,
    parse_quality,
    parse_viewport,
    parse_window,
    render_request_from,
)
from server.render.viewport import Viewport
from server.render.voi_lut import VoiFunction, Window


def test_query_and_payload_make_the_same_request() -> None:
    query = MultiDict(
        {"canvas": "800x600", "zoom": "2", "pan": "0.1,-0.2", "rotate": "90", "flip": "h"}
    )
    from_http = RenderRequest(
        sop_instance_uid="1.2.3",
        frame=parse_frame("4"),
        window=parse_window("40,400,linear-exact"),
        viewport=parse_viewport(query),
        quality=parse_quality("interactive"),
    )
    from_socket = render_request_from(
        {
            "sop_instance_uid": "1.2.3",
            "frame": 4,
            "window": {"center": 40, "width": 400, "function": "linear-exact"},
            "quality": "interactive",
            "viewport": {
                "canvas": [800, 600],
                "zoom": 2,
                "pan": [0.1, -0.2],
                "rotation": 90,
                "flip_horizontal": True,
            },
        }
    )
    assert from_http == from_socket
    assert from_http.frame == 3
    assert from_http.window == Window(40, 400, VoiFunction.LINEAR_EXACT)
    assert from_http.viewport == Viewport(
        canvas=(800, 600), zoom=2, pan_x=0.1, pan_y=-0.2, rotation=90, flip_horizontal=True
    )
    assert from_http.quality is Quality.INTERACTIVE


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"sop_instance_uid": "1", "frame": 0}, FRAME_OUT_OF_RANGE),
        ({"frame": 1}, FRAME_OUT_OF_RANGE),
        ({"sop_instance_uid": "1", "window": {"center": 1, "width": 0}}, INVALID_WINDOW),
        ({"sop_instance_uid": "1", "window": {"center": math.nan, "width": 9}}, INVALID_WINDOW),
        ({"sop_instance_uid": "1", "window": {"center": 1}}, INVALID_WINDOW),
        ({"sop_instance_uid": "1", "viewport": {"canvas": [0, 512]}}, INVALID_CANVAS),
        ({"sop_instance_uid": "1", "viewport": {"canvas": [100000, 5]}}, INVALID_CANVAS),
        ({"sop_instance_uid": "1", "viewport": {"zoom": "much"}}, INVALID_VIEWPORT),
        ({"sop_instance_uid": "1", "quality": "best"}, INVALID_QUALITY),
    ],
)
def test_bad_payloads_are_refused_with_codes(payload: dict[str, object], code: str) -> None:
    with pytest.raises(RenderError) as caught:
        render_request_from(payload)
    assert caught.value.code == code


@pytest.mark.parametrize(
    ("raw", "code"),
    [("40", INVALID_WINDOW), ("a,b", INVALID_WINDOW), ("1,2,cubic", INVALID_WINDOW)],
)
def test_bad_window_queries(raw: str, code: str) -> None:
    with pytest.raises(RenderError) as caught:
        parse_window(raw)
    assert caught.value.code == code
