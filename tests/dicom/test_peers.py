"""Who is let in: the allow-list rule, and open mode only in dev with an empty list."""

from __future__ import annotations

from server.dicom.peers import Peer, admit

CT = Peer("1", "CT1", "10.0.0.5", None, "east")
ANY_HOST = Peer("2", "MR1", None, None, "west")


def test_empty_list_is_open_only_when_allowed() -> None:
    opened = admit([], "ANYONE", "10.0.0.9", allow_open=True)
    assert opened.accepted
    assert opened.open_mode
    assert opened.facility == "main"
    assert not admit([], "ANYONE", "10.0.0.9", allow_open=False).accepted


def test_title_and_host_must_match() -> None:
    assert admit([CT, ANY_HOST], "CT1", "10.0.0.5", allow_open=True).facility == "east"
    assert not admit([CT, ANY_HOST], "CT1", "10.0.0.6", allow_open=True).accepted
    assert admit([CT, ANY_HOST], "MR1", "192.168.1.1", allow_open=True).facility == "west"
    assert not admit([CT, ANY_HOST], "XR1", "10.0.0.5", allow_open=True).accepted
