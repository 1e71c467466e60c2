import { useEffect, useState } from "preact/hooks";
import { Connection } from "../connection";
import type { Session } from "../session";
import { ConnectionBanner } from "./Banner";
import { useLinkStatus, useSession } from "./hooks";
import { SessionExpired } from "./SessionExpired";
import { Shell } from "./Shell";
import { SignIn } from "./SignIn";

export function App({ session }: { session: Session }) {
  const state = useSession(session);
  const [connection, setConnection] = useState<Connection | null>(null);
  // An expired session keeps the page (and its connection, which resyncs once the user has
  // signed in again); only signing out tears it down.
  const live = state.kind !== "signed-out";

  useEffect(() => {
    if (!live) return;
    const link = new Connection(session);
    setConnection(link);
    return () => {
      link.close();
      setConnection(null);
    };
  }, [live, session]);

  if (state.kind === "signed-out") return <SignIn session={session} reason={state.reason} />;
  if (!connection) return null;
  return (
    <>
      <Live session={session} connection={connection} />
      {state.kind === "expired" && <SessionExpired session={session} username={state.user.username} reason={state.reason} />}
    </>
  );
}

function Live({ session, connection }: { session: Session; connection: Connection }) {
  const status = useLinkStatus(connection);
  return (
    <>
      <ConnectionBanner status={status} />
      <Shell session={session} connection={connection} />
    </>
  );
}
