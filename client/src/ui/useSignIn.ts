import { useState } from "preact/hooks";
import { ApiFailure } from "../protocol/errors";
import type { Session } from "../session";

/**
 * The password, error and busy state of a sign-in form, shared by the sign-in page and the
 * session-expired dialog so both answer a failed attempt the same way (message shown, password
 * cleared).
 */
export function useSignIn(session: Session) {
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submitFor = (username: () => string) => async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await session.signIn(username(), password);
    } catch (failure) {
      setError(failure instanceof ApiFailure ? failure.message : "Sign-in failed.");
      setPassword("");
    } finally {
      setBusy(false);
    }
  };

  return { password, setPassword, error, busy, submitFor };
}
