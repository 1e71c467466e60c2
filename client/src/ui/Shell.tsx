import type { Connection } from "../connection";
import type { Session } from "../session";
import { navigate, useRoute } from "./hooks";
import { AlertToasts } from "./Toasts";
import { Uploads } from "./Uploads";
import { Viewer } from "./Viewer";
import { Worklist } from "./Worklist";

export function Shell({ session, connection }: { session: Session; connection: Connection }) {
  const route = useRoute();
  const user = session.user;
  const page = route[0] ?? "worklist";
  return (
    <div class="shell">
      <header class="topbar">
        <span class="brand">Noctis</span>
        <nav>
          <a href="#/worklist" class={page === "worklist" ? "active" : ""}>Worklist</a>
          <a href="#/uploads" class={page === "uploads" ? "active" : ""}>Uploads</a>
          {page === "study" && <span class="active">Viewer</span>}
        </nav>
        <span class="who" data-testid="whoami">
          {user?.display_name || user?.username} · {user?.role}
        </span>
        <button type="button" data-testid="signout" onClick={() => {
          navigate("worklist");
          void session.signOut();
        }}>Sign out</button>
      </header>
      <main class="page" data-testid={`page-${page}`}>
        {page === "study" && route[1] ? (
          <Viewer key={route[1]} session={session} connection={connection} studyUid={route[1]} />
        ) : page === "uploads" ? (
          <Uploads session={session} connection={connection} />
        ) : (
          <Worklist session={session} connection={connection} />
        )}
      </main>
      <AlertToasts connection={connection} />
    </div>
  );
}
