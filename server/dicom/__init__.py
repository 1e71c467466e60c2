"""The DICOM archive: DIMSE gateway, ingest and index, query/retrieve, worklist, MPPS, DICOMweb.

Wired by ``server.dicom.setup.setup_dicom``. What other layers use:

- ``app[server.dicom.archive.ARCHIVE]``: ``instance_bytes(sop_uid)`` (the Part 10 file as
  received) and ``series_instance_uids(series_uid)`` (sorted by InstanceNumber), both raising
  ``KeyError`` when unknown; ``metadata(...)``, ``instances_of(...)``, ``study(...)``.
- Hub events ``dicom.association.opened|closed``, ``dicom.instance.stored|failed``,
  ``dicom.study.stable``, ``dicom.mpps.updated`` (shapes in ``ingest.py`` and ``mpps.py``), each
  with its facility; a ``noctis import`` run's events arrive through the store (``relay.py``).
- ``scheduled_procedures`` (shape in ``worklist.py``): the Modality Worklist answers from it.
- HTTP: ``/api/dicom/peers``, ``/api/dicom/scheduled-procedures``, ``/api/uploads``
  (``shared/protocol/http/dicom.json``) and DICOMweb under ``/dicom-web``.
"""
