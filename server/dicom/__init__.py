"""The DICOM archive: DIMSE gateway, ingest and index, query/retrieve, worklist, MPPS, DICOMweb.

Wired by ``server.dicom.setup.setup_dicom``; other layers reach the archive through
``app[server.dicom.archive.ARCHIVE]`` and hear about arrivals through ``dicom.*`` hub events.
"""
