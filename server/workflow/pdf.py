"""The signed report as a PDF: facility name and logo, patient and study, the text, every addendum,
and who signed each part when, with its content hash.

Pure and CPU-bound: callers run it in a thread. fpdf2's built-in Helvetica covers Latin-1 only;
other characters are replaced rather than failing, and the signed text itself (the SR, the
stored version) keeps them exactly.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from fpdf import FPDF


def _latin1(text: str) -> str:
    return text.encode("latin-1", "replace").decode("latin-1")


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")


def render_pdf(
    study: Mapping[str, Any],
    versions: Sequence[Mapping[str, Any]],
    *,
    facility_name: str,
    logo_png: bytes | None = None,
) -> bytes:
    pdf = FPDF(format="A4")
    pdf.set_title(_latin1(f"Report {study['accession_number']}"))
    pdf.set_author("Noctis")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    if logo_png:
        pdf.image(io.BytesIO(logo_png), x=170, y=10, h=18)
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 9, _latin1(facility_name), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 12)
    pdf.cell(0, 7, "Radiology report", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font("Helvetica", "", 10)
    rows = [
        ("Patient", str(study["patient_name"]).replace("^", " ")),
        ("Patient ID", study["patient_id"]),
        ("Birth date", study.get("patient_birth_date") or "-"),
        ("Accession", study["accession_number"]),
        ("Procedure", study.get("requested_procedure") or study.get("modality") or "-"),
        ("Referring", study.get("referring_physician") or "-"),
    ]
    for label, value in rows:
        pdf.set_font("Helvetica", "B", 10)
        pdf.cell(35, 6, label)
        pdf.set_font("Helvetica", "", 10)
        pdf.cell(0, 6, _latin1(str(value)), new_x="LMARGIN", new_y="NEXT")
    for version in versions:
        pdf.ln(5)
        pdf.set_font("Helvetica", "B", 12)
        heading = "Report" if version["kind"] == "report" else f"Addendum {version['version'] - 1}"
        pdf.cell(0, 7, heading, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 11)
        pdf.multi_cell(0, 6, _latin1(version["text"]), new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)
        pdf.set_font("Helvetica", "I", 8)
        signer = version.get("signer_name") or version["signer"]
        pdf.multi_cell(
            0,
            4,
            _latin1(
                f"Electronically signed by {signer} on {_when(version['signed_at'])}. "
                f"SHA-256 {version['sha256']}"
            ),
            new_x="LMARGIN",
            new_y="NEXT",
        )
    return bytes(pdf.output())
