import { describe, expect, it } from "vitest";
import { ApiFailure } from "../src/protocol/errors";
import { EXPIRED, Session, expandPath, queryString, refreshDelayMs } from "../src/session";

type Call = { url: string; init: RequestInit | undefined };

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
}

/** A scripted server: answers each call from a queue, recording what was asked. */
function scripted(answers: Array<(call: Call) => Response>) {
  const calls: Call[] = [];
  const fetcher = (async (url: RequestInfo | URL, init?: RequestInit) => {
    const call = { url: String(url), init };
    calls.push(call);
    const next = answers.shift();
    if (!next) throw new Error(`unexpected call ${call.url}`);
    return next(call);
  }) as typeof fetch;
  return { calls, fetcher };
}

const pair = (n: number) => ({ access_token: `a${n}`, refresh_token: `r${n}`, token_type: "Bearer", expires_in: 900 });
const me = { username: "ada", role: "radiologist", facility: "main" };

describe("Session", () => {
  it("signs in, keeps tokens in memory and sends the bearer token", async () => {
    const { calls, fetcher } = scripted([() => json(200, pair(1)), () => json(200, me)]);
    const session = new Session(fetcher);
    const user = await session.signIn("ada", "pw");
    expect(user.username).toBe("ada");
    expect(session.state.kind).toBe("signed-in");
    expect(calls[0]!.url).toBe("/api/auth/login");
    expect(new Headers(calls[1]!.init!.headers).get("Authorization")).toBe("Bearer a1");
    session.end();
  });

  it("refreshes once for concurrent callers and retries an expired request", async () => {
    const { calls, fetcher } = scripted([
      () => json(200, pair(1)),
      () => json(200, me),
      () => json(401, { error: { code: "token_expired", message: "expired" } }),
      () => json(200, pair(2)),
      (call) => json(200, { ...me, seen: new Headers(call.init!.headers).get("Authorization") }),
    ]);
    const session = new Session(fetcher);
    await session.signIn("ada", "pw");
    const again = await session.request("me");
    expect((again as Record<string, unknown>).seen).toBe("Bearer a2");
    expect(JSON.parse(String(calls[3]!.init!.body))).toEqual({ refresh_token: "r1" });
    session.end();
  });

  it("expires the session, keeping the user, when the refresh token is refused", async () => {
    const { fetcher } = scripted([
      () => json(200, pair(1)),
      () => json(200, me),
      () => json(401, { error: { code: "refresh_token_reused", message: "reused" } }),
      () => json(200, pair(2)),
      () => json(200, me),
    ]);
    const session = new Session(fetcher);
    const states: string[] = [];
    session.subscribe((state) => states.push(state.kind));
    await session.signIn("ada", "pw");
    await expect(session.refresh()).rejects.toBeInstanceOf(ApiFailure);
    expect(session.state).toEqual({ kind: "expired", user: me, reason: EXPIRED });
    expect(session.token).toBeNull();
    expect(session.user).toEqual(me);
    await expect(session.refresh()).rejects.toBeInstanceOf(ApiFailure); // nothing left to refresh
    session.expire();
    expect(states).toEqual(["signed-in", "expired"]);
    await session.signIn("ada", "pw");
    expect(session.state.kind).toBe("signed-in");
    expect(session.token).toBe("a2");
    session.end();
    expect(session.state).toEqual({ kind: "signed-out" });
  });

  it("reports a wrong password with the server's message", async () => {
    const { fetcher } = scripted([() => json(401, { error: { code: "invalid_credentials", message: "Wrong username or password." } })]);
    const session = new Session(fetcher);
    await expect(session.signIn("ada", "bad")).rejects.toMatchObject({ code: "invalid_credentials" });
    expect(session.state.kind).toBe("signed-out");
  });
});

describe("helpers", () => {
  it("refreshes at three quarters of the lifetime, never sooner than 5 s", () => {
    expect(refreshDelayMs(900)).toBe(675_000);
    expect(refreshDelayMs(2)).toBe(5_000);
  });
  it("encodes path parameters and skips empty query values", () => {
    expect(expandPath("/api/users/{username}", { username: "a b/c" })).toBe("/api/users/a%20b%2Fc");
    expect(queryString({ q: "Doe^J", stat: true, empty: "", none: undefined })).toBe("?q=Doe%5EJ&stat=true");
  });
});
