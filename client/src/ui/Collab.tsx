import { useEffect, useRef, useState } from "preact/hooks";
import { ApiFailure } from "../protocol/errors";
import type { ChatMessage, RoomsParticipant, RoomsViewport } from "../protocol/generated";
import { mentionsIn, people, type RoomState } from "../room";
import type { RoomClient } from "../roomClient";

const ROLE_LABEL: Record<string, string> = {
  admin: "Admin",
  radiologist: "Radiologist",
  technician: "Technician",
  referring_physician: "Referring",
};

export function ParticipantsBar(props: {
  room: RoomClient;
  state: RoomState;
  meUsername: string;
  following: boolean;
  onFollow: (following: boolean) => void;
  onProblem: (message: string | null) => void;
}) {
  const { room, state, meUsername } = props;
  const presenter = state.presenter;
  const iPresent = presenter?.username === meUsername;
  const [asked, setAsked] = useState(false);
  const nameOf = (actor: { user_id: string; username: string }) => {
    const p = state.participants.find((x) => x.user_id === actor.user_id);
    return p?.display_name || actor.username;
  };
  useEffect(() => setAsked(false), [presenter?.user_id, state.answer]);
  const askForControl = async () => {
    try {
      await room.requestControl();
      setAsked(true);
      props.onProblem(null);
    } catch (failure) {
      props.onProblem(failure instanceof ApiFailure ? failure.message : "Could not ask for control.");
    }
  };
  const answer = async (id: string, grant: boolean) => {
    try {
      await room.answerControl(id, grant);
      if (grant) props.onFollow(true);
      props.onProblem(null);
    } catch (failure) {
      props.onProblem(failure instanceof ApiFailure ? failure.message : "Could not answer the request.");
    }
  };
  const act = async (event: string, payload: Record<string, unknown> = {}) => {
    try {
      await room.request(event, payload);
      props.onProblem(null);
    } catch (failure) {
      props.onProblem(failure instanceof ApiFailure ? failure.message : `${event} failed`);
    }
  };
  return (
    <div class="participants" data-testid="participants">
      {people(state.participants).map((p) => (
        <span key={p.user_id} class={`participant${presenter?.user_id === p.user_id ? " presenting" : ""}`} data-testid="participant"
          ref={(el) => { if (el) el.style.borderColor = p.colour; }}>
          <span class="dot" ref={(el) => { if (el) el.style.background = p.colour; }} />
          {p.display_name || p.username}
          <small>{ROLE_LABEL[p.role] ?? p.role}{presenter?.user_id === p.user_id ? " · presenting" : ""}</small>
          {iPresent && p.username !== meUsername && (
            <button type="button" class="small" onClick={() => void act("follow.handover", { user_id: p.user_id })}>Hand over</button>
          )}
        </span>
      ))}
      <span class="follow-controls">
        {!presenter && <button type="button" data-testid="present" onClick={() => void act("follow.present")}>Present</button>}
        {iPresent && <button type="button" data-testid="stop-presenting" onClick={() => void act("follow.stop")}>Stop presenting</button>}
        {presenter && !iPresent && (
          props.following
            ? <button type="button" data-testid="step-out" onClick={() => props.onFollow(false)}>Step out</button>
            : <button type="button" data-testid="follow" onClick={() => props.onFollow(true)}>Follow {presenter.username}</button>
        )}
        {presenter && !iPresent && !asked && (
          <button type="button" data-testid="take-control" onClick={() => void askForControl()}>Take control</button>
        )}
        {presenter && !iPresent && asked && (
          <span class="control-status" role="status" data-testid="control-asked">Asked {nameOf(presenter)} for control…</span>
        )}
        {state.answer && !state.answer.granted && !asked && (
          <span class="control-status" role="status" data-testid="control-declined">{nameOf(state.answer.by)} declined your request for control.</span>
        )}
      </span>
      {iPresent && state.requests.map((request) => (
        <span key={request.id} class="control-request" role="alert" data-testid="control-request">
          {nameOf(request.from)} asks for control
          <button type="button" class="small" data-testid="control-grant" onClick={() => void answer(request.id, true)}>Grant</button>
          <button type="button" class="small" data-testid="control-decline" onClick={() => void answer(request.id, false)}>Decline</button>
        </span>
      ))}
    </div>
  );
}

function time(at: number): string {
  return new Date(at * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

export function ChatPanel(props: {
  room: RoomClient;
  messages: ChatMessage[];
  me: string;
  currentViewport: () => RoomsViewport | null;
  onRestore: (viewport: RoomsViewport) => void;
}) {
  const [text, setText] = useState("");
  const [lookHere, setLookHere] = useState(false);
  const [problem, setProblem] = useState<string | null>(null);
  const list = useRef<HTMLOListElement>(null);

  useEffect(() => {
    list.current?.scrollTo({ top: list.current.scrollHeight });
  }, [props.messages.length]);

  const send = async (event: Event) => {
    event.preventDefault();
    const body = text.trim();
    if (!body) return;
    try {
      await props.room.chat(body, mentionsIn(body), lookHere ? props.currentViewport() ?? undefined : undefined);
      setText("");
      setLookHere(false);
      setProblem(null);
    } catch (failure) {
      setProblem(failure instanceof ApiFailure ? failure.message : "The message was not sent.");
    }
  };

  return (
    <section class="chat" aria-label="Chat">
      <h3>Chat</h3>
      <ol class="messages" ref={list} data-testid="chat-messages">
        {props.messages.filter((m) => !m.deleted).map((m) => (
          <li key={m.id} class={m.mentions.includes(props.me) ? "mention" : ""} data-testid="chat-message">
            <span class="author">{m.author.username}</span> <time>{time(m.at)}</time>
            <p class="text">{m.text}</p>
            {m.ref?.viewport && (
              <button type="button" class="link" data-testid="look-here" onClick={() => props.onRestore(m.ref!.viewport!)}>Look here</button>
            )}
          </li>
        ))}
      </ol>
      <form class="chat-form" onSubmit={send}>
        <input value={text} maxLength={4000} placeholder="Message (@name to mention)" data-testid="chat-input"
          onInput={(e) => setText((e.target as HTMLInputElement).value)} />
        <label class="look-here"><input type="checkbox" checked={lookHere} onChange={() => setLookHere(!lookHere)} /> look here</label>
        <button type="submit" data-testid="chat-send">Send</button>
      </form>
      {problem && <p class="error">{problem}</p>}
    </section>
  );
}

/** The report draft, bound to the room's Yjs text; remote edits keep the local caret in place. */
export function ReportPanel({ room, readOnly }: { room: RoomClient; readOnly: boolean }) {
  const area = useRef<HTMLTextAreaElement>(null);
  const [value, setValue] = useState(room.report.text.toString());

  useEffect(() => {
    const text = room.report.text;
    const observer = () => {
      const next = text.toString();
      const element = area.current;
      if (element && element.value !== next) {
        const start = element.selectionStart;
        const end = element.selectionEnd;
        const before = element.value.slice(0, start);
        const shift = next.startsWith(before) ? 0 : next.length - element.value.length;
        element.value = next;
        element.setSelectionRange(Math.max(0, start + shift), Math.max(0, end + shift));
      }
      setValue(next);
    };
    text.observe(observer);
    return () => text.unobserve(observer);
  }, [room]);

  return (
    <section class="report" aria-label="Report draft">
      <h3>Report draft</h3>
      <textarea ref={area} data-testid="report-text" readOnly={readOnly} value={value} rows={10}
        onInput={(e) => room.report.setText((e.target as HTMLTextAreaElement).value)} />
    </section>
  );
}

export function colourFor(participants: RoomsParticipant[], userId: string): string {
  return participants.find((p) => p.user_id === userId)?.colour ?? "#58a6ff";
}
