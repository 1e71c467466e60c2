import { useEffect, useState } from "preact/hooks";
import type { LinkStatus } from "../connection";

const TEXT: Record<LinkStatus, string> = {
  connecting: "Connecting to the server…",
  online: "",
  offline: "Connection lost — reconnecting. Changes you make now may not reach others.",
  resynced: "Reconnected — back in sync.",
};

/** A clear banner while the live connection is down, and a short one when it is back. */
export function ConnectionBanner({ status }: { status: LinkStatus }) {
  const [shown, setShown] = useState<LinkStatus>(status);
  useEffect(() => {
    setShown(status);
    if (status !== "resynced") return;
    const timer = setTimeout(() => setShown("online"), 4_000);
    return () => clearTimeout(timer);
  }, [status]);
  if (shown === "online") return null;
  return (
    <div class={`banner banner-${shown}`} role="status" aria-live="polite" data-testid="connection-banner" data-status={shown}>
      {TEXT[shown]}
    </div>
  );
}
