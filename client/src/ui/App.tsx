import { useEffect, useState } from "preact/hooks";
import { Connection } from "../connection";
import type { Session } from "../session";
import { ConnectionBanner } from "./Banner";
import { useLinkStatus, useSession } from "./hooks";
import { Shell } from "./Shell";
import { SignIn } from "./SignIn";

export function App({ session }: { session: Session }) {
  const state = useSession(session);
  const [connection, setConnection] = useState<Connection | null>(null);

  useEffect(() => {
    if (state.kind !== "signed-in") return;
    const link = new Connection(session);
    setConnection(link);
    return () => {
      link.close();
      setConnection(null);
    };
  }, [state.kind, session]);

  if (state.kind === "signed-out") return <SignIn session={session} reason={state.reason} />;
  if (!connection) return null;
  return <Live session={session} connection={connection} />;
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
