import { useState } from "preact/hooks";
import type { Session } from "../session";
import { useSignIn } from "./useSignIn";

export function SignIn({ session, reason }: { session: Session; reason?: string | undefined }) {
  const [username, setUsername] = useState("");
  const { password, setPassword, error, busy, submitFor } = useSignIn(session);
  const submit = submitFor(() => username.trim());

  return (
    <main class="signin">
      <form class="signin-form" onSubmit={submit} autocomplete="on" data-testid="signin-form">
        <h1>Noctis</h1>
        {reason && !error && <p class="notice" role="status">{reason}</p>}
        {error && <p class="error" role="alert" data-testid="signin-error">{error}</p>}
        <label>
          Username
          <input name="username" autocomplete="username" required value={username}
            onInput={(e) => setUsername((e.target as HTMLInputElement).value)} />
        </label>
        <label>
          Password
          <input name="password" type="password" autocomplete="current-password" required value={password}
            onInput={(e) => setPassword((e.target as HTMLInputElement).value)} />
        </label>
        <button type="submit" disabled={busy}>{busy ? "Signing in…" : "Sign in"}</button>
      </form>
    </main>
  );
}
