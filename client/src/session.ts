import { ApiFailure, endsSession, errorOf } from "./protocol/errors";
import type { AuthTokenPair, AuthUser, RequestBodies, ResponseBodies } from "./protocol/generated";
import { REQUESTS } from "./protocol/generated";

export type SessionState =
  | { kind: "signed-out"; reason?: string }
  | { kind: "signed-in"; user: AuthUser }
  /** The server ended the session (refresh token revoked or expired): the page stays as it is,
   * with what the user typed, until they sign in again as the same user. */
  | { kind: "expired"; user: AuthUser; reason: string };

export const EXPIRED = "Your session has expired. Sign in again to carry on; what you typed is kept.";

type Listener = (state: SessionState) => void;
type Fetch = typeof fetch;

/** When to refresh: well before expiry, so a slow network never lets the token lapse. */
export function refreshDelayMs(expiresInS: number): number {
  return Math.max(5_000, Math.floor(expiresInS * 1000 * 0.75));
}

/** Expands `/api/users/{username}` with URL-encoded parameters. */
export function expandPath(path: string, params: Record<string, string> = {}): string {
  return path.replace(/\{([a-z_]+)\}/g, (_, key: string) => {
    const value = params[key];
    if (value === undefined) throw new Error(`missing path parameter ${key}`);
    return encodeURIComponent(value);
  });
}

/**
 * The signed-in session. Tokens live only in this object's memory: never in the URL, cookies or
 * web storage, so a reload signs the user out and nothing can lift them from disk. The access
 * token is refreshed in the background; one refresh is in flight at a time because the server
 * rotates refresh tokens and revokes a session whose old token is replayed.
 */
export class Session {
  private access: string | null = null;
  private refreshToken: string | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private inflight: Promise<string> | null = null;
  private listeners = new Set<Listener>();
  private tokenListeners = new Set<(token: string) => void>();
  state: SessionState = { kind: "signed-out" };

  constructor(private readonly fetcher: Fetch = (...a) => fetch(...a)) {}

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Called with every new access token, so live connections can renew in place. */
  onToken(listener: (token: string) => void): () => void {
    this.tokenListeners.add(listener);
    return () => this.tokenListeners.delete(listener);
  }

  get token(): string | null {
    return this.access;
  }

  get user(): AuthUser | null {
    return this.state.kind === "signed-out" ? null : this.state.user;
  }

  async signIn(username: string, password: string): Promise<AuthUser> {
    const body: RequestBodies["auth.login"] = { username, password };
    const pair = await this.raw<AuthTokenPair>(REQUESTS["auth.login"].method, REQUESTS["auth.login"].path, body);
    this.adopt(pair);
    const user = await this.request("me");
    this.setState({ kind: "signed-in", user });
    return user;
  }

  async signOut(): Promise<void> {
    const refresh = this.refreshToken;
    try {
      if (this.access) {
        await this.request("auth.logout", { body: refresh ? { refresh_token: refresh } : {} });
      }
    } catch {
      // Signing out locally must succeed even when the server cannot be reached.
    }
    this.end();
  }

  /** Forget everything and show the sign-in page; used on sign-out. */
  end(reason?: string): void {
    this.forget();
    this.setState(reason ? { kind: "signed-out", reason } : { kind: "signed-out" });
  }

  /** The server ended the session: drop the tokens but keep the user (and the page) so they
   * can sign in again where they were. */
  expire(reason = EXPIRED): void {
    const user = this.user;
    this.forget();
    if (!user) {
      this.setState({ kind: "signed-out", reason });
    } else if (this.state.kind !== "expired") {
      this.setState({ kind: "expired", user, reason });
    }
  }

  private forget(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.access = null;
    this.refreshToken = null;
    this.inflight = null;
  }

  /** A fresh access token; concurrent callers share one refresh. */
  refresh(): Promise<string> {
    if (this.inflight) return this.inflight;
    const token = this.refreshToken;
    if (!token) return Promise.reject(new ApiFailure("auth_required", "Sign in first.", 401));
    const body: RequestBodies["auth.refresh"] = { refresh_token: token };
    this.inflight = this.raw<AuthTokenPair>(REQUESTS["auth.refresh"].method, REQUESTS["auth.refresh"].path, body)
      .then((pair) => {
        this.adopt(pair);
        return pair.access_token;
      })
      .catch((error: unknown) => {
        if (error instanceof ApiFailure && (error.status === 401 || error.status === 403)) {
          this.expire();
        } else {
          this.schedule(30);
        }
        throw error;
      })
      .finally(() => {
        this.inflight = null;
      });
    return this.inflight;
  }

  /** A catalog request, authorized; a 401 for an expired token refreshes once and retries. */
  async request<N extends keyof typeof REQUESTS>(
    name: N,
    options: {
      params?: Record<string, string>;
      query?: Record<string, string | number | boolean | undefined>;
      body?: N extends keyof RequestBodies ? RequestBodies[N] : never;
    } = {},
  ): Promise<N extends keyof ResponseBodies ? ResponseBodies[N] : unknown> {
    const spec = REQUESTS[name];
    let path = expandPath(spec.path, options.params);
    if (options.query) path += queryString(options.query);
    return this.authorized(spec.method, path, options.body);
  }

  /** Any authorized JSON call (for routes whose catalog entries are still landing). */
  async authorized<T>(method: string, path: string, body?: unknown, accept = "application/json"): Promise<T> {
    try {
      return await this.raw<T>(method, path, body, this.access, accept);
    } catch (error) {
      if (error instanceof ApiFailure && error.code === "token_expired") {
        const token = await this.refresh();
        return this.raw<T>(method, path, body, token, accept);
      }
      if (error instanceof ApiFailure && error.status === 401 && endsSession(error.code)) {
        this.expire();
      }
      throw error;
    }
  }

  /** A rendered image and the window the server applied (X-Render-Window: center,width). */
  async image(path: string, signal?: AbortSignal): Promise<{ blob: Blob; window: [number, number] | null }> {
    const response = await this.binary(path, signal);
    const header = response.headers.get("X-Render-Window");
    const parts = header ? header.split(",").map(Number) : [];
    const window = parts.length === 2 && parts.every(Number.isFinite) ? ([parts[0], parts[1]] as [number, number]) : null;
    return { blob: await response.blob(), window };
  }

  /** Binary GET (rendered frames, thumbnails), authorized the same way. */
  async blob(path: string, signal?: AbortSignal): Promise<Blob> {
    return (await this.binary(path, signal)).blob();
  }

  private async binary(path: string, signal?: AbortSignal): Promise<Response> {
    const attempt = async (token: string | null): Promise<Response> =>
      this.fetcher(path, { headers: token ? { Authorization: `Bearer ${token}` } : {}, signal });
    let response = await attempt(this.access);
    if (response.status === 401) {
      const failure = errorOf(await response.json().catch(() => null), 401);
      if (failure?.code === "token_expired") response = await attempt(await this.refresh());
    }
    if (!response.ok) {
      const failure = errorOf(await response.json().catch(() => null), response.status);
      throw failure ?? new ApiFailure("internal_error", `HTTP ${response.status}`, response.status);
    }
    return response;
  }

  private adopt(pair: AuthTokenPair): void {
    this.access = pair.access_token;
    this.refreshToken = pair.refresh_token;
    this.schedule(pair.expires_in);
    for (const listener of this.tokenListeners) listener(pair.access_token);
  }

  private schedule(expiresInS: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.refresh().catch(() => undefined);
    }, refreshDelayMs(expiresInS));
  }

  private setState(state: SessionState): void {
    this.state = state;
    for (const listener of this.listeners) listener(state);
  }

  private async raw<T>(
    method: string,
    path: string,
    body: unknown,
    token?: string | null,
    accept = "application/json",
  ): Promise<T> {
    const headers: Record<string, string> = { Accept: accept };
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response: Response;
    try {
      response = await this.fetcher(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
        credentials: "same-origin",
      });
    } catch {
      throw new ApiFailure("network_error", "The server cannot be reached.");
    }
    if (response.status === 204) return null as T;
    const data: unknown = await response.json().catch(() => null);
    if (!response.ok) {
      throw (
        errorOf(data, response.status) ??
        new ApiFailure("internal_error", `The server answered ${response.status}.`, response.status)
      );
    }
    return data as T;
  }
}

export function queryString(query: Record<string, string | number | boolean | undefined>): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== "") params.set(key, String(value));
  }
  const text = params.toString();
  return text ? `?${text}` : "";
}
