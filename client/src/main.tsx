import { render } from "preact";
import { App } from "./ui/App";
import { Session } from "./session";
import "./styles.css";

const root = document.getElementById("app");
if (root) render(<App session={new Session()} />, root);
