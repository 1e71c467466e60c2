"""The one place that says what each role may do."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    RADIOLOGIST = "radiologist"
    TECHNICIAN = "technician"
    REFERRING_PHYSICIAN = "referring_physician"


class Permission(StrEnum):
    USERS_MANAGE = "users.manage"
    AUDIT_READ = "audit.read"
    STUDIES_READ = "studies.read"
    IMAGES_VIEW = "images.view"
    DICOM_UPLOAD = "dicom.upload"
    DICOM_ADMIN = "dicom.admin"
    UPLOADS_WATCH = "uploads.watch"
    WORKLIST_READ = "worklist.read"
    WORKLIST_ASSIGN = "worklist.assign"
    ORDERS_MANAGE = "orders.manage"
    ROOMS_JOIN = "rooms.join"
    ANNOTATIONS_WRITE = "annotations.write"
    CHAT_WRITE = "chat.write"
    REPORTS_READ = "reports.read"
    REPORTS_WRITE = "reports.write"
    REPORTS_SIGN = "reports.sign"
    ALERTS_MANAGE = "alerts.manage"
    STATS_READ = "stats.read"
    CROSS_FACILITY = "facility.any"


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.RADIOLOGIST: frozenset(
        {
            Permission.STUDIES_READ,
            Permission.IMAGES_VIEW,
            Permission.WORKLIST_READ,
            Permission.ROOMS_JOIN,
            Permission.ANNOTATIONS_WRITE,
            Permission.CHAT_WRITE,
            Permission.REPORTS_READ,
            Permission.REPORTS_WRITE,
            Permission.REPORTS_SIGN,
            Permission.ALERTS_MANAGE,
        }
    ),
    Role.TECHNICIAN: frozenset(
        {
            Permission.STUDIES_READ,
            Permission.IMAGES_VIEW,
            Permission.DICOM_UPLOAD,
            Permission.UPLOADS_WATCH,
            Permission.WORKLIST_READ,
            Permission.ORDERS_MANAGE,
            Permission.CHAT_WRITE,
        }
    ),
    # Referring physicians see only studies they ordered or were invited to; the rooms and the
    # workflow enforce that scope on top of these permissions.
    Role.REFERRING_PHYSICIAN: frozenset(
        {
            Permission.IMAGES_VIEW,
            Permission.ROOMS_JOIN,
            Permission.CHAT_WRITE,
            Permission.REPORTS_READ,
        }
    ),
}


def permissions_for(role: Role) -> frozenset[Permission]:
    return ROLE_PERMISSIONS[role]
