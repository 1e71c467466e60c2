import type { ErrorCode } from "./generated";
import { ERROR_CODES } from "./generated";

/** A failure the server (or the network) reported, carrying a catalog error code. */
export class ApiFailure extends Error {
  constructor(
    readonly code: ErrorCode | "network_error",
    message: string,
    readonly status = 0,
    readonly details: unknown = undefined,
  ) {
    super(message);
  }
}

const KNOWN = new Set<string>(ERROR_CODES);

/** Reads `{"error": {"code", "message"}}` if the value has that shape, else null. */
export function errorOf(value: unknown, status = 0): ApiFailure | null {
  if (typeof value !== "object" || value === null || !("error" in value)) return null;
  const body = (value as { error: unknown }).error;
  if (typeof body !== "object" || body === null) return null;
  const { code, message, details } = body as Record<string, unknown>;
  if (typeof code !== "string" || typeof message !== "string") return null;
  const known = KNOWN.has(code) ? (code as ErrorCode) : "internal_error";
  return new ApiFailure(known, message, status, details);
}

/** Codes after which the session cannot continue and the user must sign in again. */
export function endsSession(code: string): boolean {
  return (
    code === "refresh_token_reused" ||
    code === "invalid_token" ||
    code === "account_disabled" ||
    code === "auth_required"
  );
}
