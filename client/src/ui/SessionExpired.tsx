import type { Session } from "../session";
import { useSignIn } from "./useSignIn";

/**
 * Over the page, not instead of it: the viewer, the report draft and half-typed messages stay
 * where they are while the same user signs in again; signing out instead discards them.
 */
export function SessionExpired({ session, username, reason }: { session: Session; username: string; reason: string }) {
  const { password, setPassword, error, busy, submitFor } = useSignIn(session);
  const submit = submitFor(() => username);

  return (
    <div class="expired-overlay" role="dialog" aria-modal="true" aria-labelledby="expired-title" data-testid="session-expired">
      <form class="signin-form expired" onSubmit={submit}>
        <h2 id="expired-title">Session expired</h2>
        <p class="notice" role="status">{reason}</p>
        {error && <p class="error" role="alert" data-testid="expired-error">{error}</p>}
        <label>
          Username
          <input name="expired-username" value={username} readOnly autocomplete="username" />
        </label>
        <label>
          Password
          <input name="expired-password" type="password" autocomplete="current-password" required value={password} data-testid="expired-password"
            onInput={(e) => setPassword((e.target as HTMLInputElement).value)} />
        </label>
        <button type="submit" disabled={busy} data-testid="expired-signin">{busy ? "Signing in…" : "Sign in again"}</button>
        <button type="button" class="link" onClick={() => session.end()}>Sign out instead</button>
      </form>
    </div>
  );
}
