"""pynetdicom SCU helpers for tests: each call runs its blocking association in a thread."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from pydicom.dataset import Dataset
from pynetdicom import AE, StoragePresentationContexts
from pynetdicom.association import Association

T = TypeVar("T")


def make_ae(ae_title: str = "TESTSCU") -> AE:
    ae = AE(ae_title=ae_title)
    ae.acse_timeout = 10
    ae.dimse_timeout = 20
    ae.network_timeout = 20
    return ae


def associate(ae: AE, port: int, **kwargs: Any) -> Association:
    return ae.associate("127.0.0.1", port, ae_title="NOCTIS", **kwargs)


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.to_thread(fn, *args)


def store(port: int, datasets: list[Dataset], ae_title: str = "TESTSCU") -> list[int]:
    """C-STORE each dataset on one association; return the statuses."""
    ae = make_ae(ae_title)
    ae.requested_contexts = StoragePresentationContexts[:120]
    contexts = {(str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID)) for ds in datasets}
    ae.requested_contexts = []
    for sop_class, syntax in sorted(contexts):
        ae.add_requested_context(sop_class, syntax)
    assoc = associate(ae, port)
    if not assoc.is_established:
        raise ConnectionError("association rejected")
    statuses = []
    try:
        for ds in datasets:
            status = assoc.send_c_store(ds)
            statuses.append(int(status.Status) if "Status" in status else -1)
    finally:
        assoc.release()
    return statuses
