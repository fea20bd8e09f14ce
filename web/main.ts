import type { JsonObject } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { answerText, chunkText } from "./answer.js";
import { ui } from "./elements.js";
import { formatMs } from "./format.js";
import { describeEntry, readJournalEntry } from "./journal.js";
import { connectGateway, describeFailure, type CallFailure } from "./rpc.js";
import { starterBody } from "./starter.js";

/**
 * The playground: a provider, a key and a body in; the answer as it arrives, its code,
 * timings and journal key out; the journal entry read back on demand. Everything goes
 * through the gateway's gRPC-Web services (web/rpc.ts).
 */

const STORAGE = { key: "passthrough.playground.apiKey", provider: "passthrough.playground.provider", body: "passthrough.playground.body" };

const gateway = connectGateway(window.location, () => ui.apiKey.value.trim());
ui.gatewayUrl.textContent = gateway.baseUrl;

// ---- the key, the providers, the body ----

ui.apiKey.value = sessionStorage.getItem(STORAGE.key) ?? "";
ui.body.value = sessionStorage.getItem(STORAGE.body) ?? starterBody("");
let providersAsked = 0;
let keyTimer: ReturnType<typeof setTimeout> | undefined;

ui.apiKey.addEventListener("input", () => {
  sessionStorage.setItem(STORAGE.key, ui.apiKey.value.trim());
  clearTimeout(keyTimer);
  keyTimer = setTimeout(loadProviders, 300);
});
ui.toggleKey.addEventListener("click", () => {
  const shown = ui.apiKey.type === "text";
  ui.apiKey.type = shown ? "password" : "text";
  ui.toggleKey.textContent = shown ? "Show" : "Hide";
});

/** Fills the picker from ListProviders; a failure keeps the names it had and says why. */
async function loadProviders(): Promise<void> {
  const asked = ++providersAsked;
  if (ui.apiKey.value.trim() === "") {
    setProviders([]);
    ui.providersState.textContent = "";
    return;
  }
  ui.providersState.textContent = "Loading providers…";
  ui.providersState.dataset.state = "";
  try {
    const { providers } = await gateway.passthrough.listProviders({});
    if (asked !== providersAsked) return;
    setProviders(providers.map((provider) => provider.name));
    ui.providersState.textContent = providers.length === 0 ? "This key may use no enabled provider." : "";
  } catch (error) {
    if (asked !== providersAsked) return;
    const failure = describeFailure(error, gateway.baseUrl);
    ui.providersState.textContent = `Providers not listed: ${failure.codeName}: ${failure.description}`;
    ui.providersState.dataset.state = "error";
    if (ui.provider.disabled) ui.provider.replaceChildren(new Option("not listed: see below", ""));
  }
}

function setProviders(names: readonly string[]): void {
  const wanted = ui.provider.value || sessionStorage.getItem(STORAGE.provider) || "";
  ui.provider.replaceChildren(
    ...(names.length === 0 ? [new Option(ui.apiKey.value.trim() === "" ? "enter a key first" : "no provider", "")] : names.map((name) => new Option(name, name))),
  );
  ui.provider.disabled = names.length === 0;
  ui.provider.value = names.includes(wanted) ? wanted : (names[0] ?? "");
  providerChanged();
}

let starterOf = "";
ui.provider.addEventListener("change", providerChanged);
/** A body still as its starter was follows the provider; an edited one is left alone. */
function providerChanged(): void {
  const provider = ui.provider.value;
  if (provider !== "") sessionStorage.setItem(STORAGE.provider, provider);
  if (provider === starterOf) return;
  if (ui.body.value.trim() === "" || ui.body.value === starterBody(starterOf)) setBody(starterBody(provider));
  starterOf = provider;
}

function setBody(text: string): void {
  ui.body.value = text;
  bodyChanged();
}
ui.body.addEventListener("input", bodyChanged);
ui.resetBody.addEventListener("click", () => setBody(starterBody(ui.provider.value)));
ui.formatBody.addEventListener("click", () => {
  const parsed = parseBody();
  if (parsed.body !== undefined) setBody(JSON.stringify(parsed.body, null, 2));
});

/** The editor's text as a JSON object, or why it is not one. */
function parseBody(): { body?: JsonObject; problem?: string } {
  try {
    const value: unknown = JSON.parse(ui.body.value);
    if (value === null || typeof value !== "object" || Array.isArray(value)) return { problem: "the body must be a JSON object" };
    return { body: value as JsonObject };
  } catch (error) {
    return { problem: `invalid JSON: ${(error as Error).message}` };
  }
}

function bodyChanged(): void {
  sessionStorage.setItem(STORAGE.body, ui.body.value);
  const { problem } = parseBody();
  ui.bodyState.textContent = problem ?? "valid JSON";
  ui.bodyState.className = `pill ${problem === undefined ? "ok" : "bad"}`;
}

// ---- sending ----

let running: AbortController | undefined;
let journalKey = "";

ui.send.addEventListener("click", () => void send());
ui.stop.addEventListener("click", () => running?.abort());
document.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    if (running === undefined) void send();
  }
});

/** Sends the body unary or streaming and shows the answer, its timings, code and journal key. */
async function send(): Promise<void> {
  const { body, problem } = parseBody();
  if (body === undefined) {
    showStatus("error", "NOT SENT", "");
    showError("The body was not sent", problem ?? "");
    return;
  }
  const request = { providerName: ui.provider.value, body };
  const controller = new AbortController();
  running = controller;
  resetAnswer();
  setRunning(true);
  showStatus("sending", "sending…", "");
  const started = performance.now();
  const elapsed = () => performance.now() - started;
  const ticker = setInterval(() => (ui.total.textContent = formatMs(elapsed())), 97);
  const onHeader = (headers: Headers) => setJournalKey(headers.get("x-journal-key"));
  const raw: string[] = [];
  try {
    if (ui.streamMode.checked) {
      let count = 0;
      const text = appendTarget();
      for await (const { chunk } of gateway.passthrough.passthroughStream(request, { signal: controller.signal, onHeader })) {
        if (count++ === 0) {
          ui.firstChunk.textContent = formatMs(elapsed());
          showStatus("streaming", "streaming…", "");
        }
        ui.chunkCount.textContent = String(count);
        text.appendData(chunkText(chunk));
        raw.push(JSON.stringify(chunk ?? {}));
        ui.raw.textContent = raw.join("\n");
        follow(ui.output);
      }
      if (count === 0) ui.chunkCount.textContent = "0";
    } else {
      const response = await gateway.passthrough.passthrough(request, { signal: controller.signal, onHeader });
      ui.output.textContent = answerText(response.body);
      ui.raw.textContent = JSON.stringify(response.body ?? {}, null, 2);
      ui.chunkCount.textContent = "1";
    }
    if (ui.output.textContent === "") ui.output.textContent = "(the answer has no text: see Raw)";
    showStatus("ok", "OK", "gRPC 0");
  } catch (error) {
    const failure = describeFailure(error, gateway.baseUrl);
    const key = ConnectError.from(error).metadata.get("x-journal-key");
    if (key !== null) setJournalKey(key);
    showFailure(failure);
  } finally {
    clearInterval(ticker);
    ui.total.textContent = formatMs(elapsed());
    running = undefined;
    setRunning(false);
  }
}

/** A text node the stream appends to, so that each chunk costs no re-render of the whole answer. */
function appendTarget(): Text {
  const node = document.createTextNode("");
  ui.output.replaceChildren(node);
  return node;
}

/** Keeps the newest text in view while it streams, unless the reader scrolled up. */
function follow(view: HTMLElement): void {
  if (view.scrollHeight - view.scrollTop - view.clientHeight < 48) view.scrollTop = view.scrollHeight;
}

function resetAnswer(): void {
  ui.output.textContent = "";
  ui.raw.textContent = "";
  ui.journalEntry.textContent = "";
  ui.firstChunk.textContent = "—";
  ui.total.textContent = "—";
  ui.chunkCount.textContent = "—";
  ui.error.hidden = true;
  setJournalKey(null);
  showTab("answer");
}

function setRunning(on: boolean): void {
  ui.send.disabled = on;
  ui.stop.disabled = !on;
}

function showStatus(state: string, label: string, code: string): void {
  ui.status.dataset.state = state;
  ui.status.textContent = label;
  ui.code.textContent = code;
}

function showFailure(failure: CallFailure): void {
  const cancelled = failure.code === Code.Canceled && running?.signal.aborted === true;
  showStatus(cancelled ? "cancelled" : "error", failure.codeName, failure.network ? "no answer" : `gRPC ${failure.code}`);
  showError(failure.network ? "Network error" : `${failure.codeName} (gRPC ${failure.code})`, failure.description);
  if (failure.code === Code.Unauthenticated) ui.readJournal.disabled = true;
}

function showError(title: string, description: string): void {
  ui.errorCode.textContent = title;
  ui.errorMessage.textContent = description;
  ui.error.hidden = false;
}

function setJournalKey(key: string | null): void {
  journalKey = key ?? "";
  ui.journalKey.textContent = journalKey === "" ? "—" : journalKey;
  ui.journalKey.title = journalKey;
  ui.copyKey.disabled = journalKey === "";
  ui.readJournal.disabled = journalKey === "";
}

ui.copyKey.addEventListener("click", () => {
  void navigator.clipboard?.writeText(journalKey).then(
    () => flash(ui.copyKey, "Copied"),
    () => flash(ui.copyKey, "Not copied"),
  );
});

function flash(button: HTMLButtonElement, text: string): void {
  const before = button.textContent;
  button.textContent = text;
  setTimeout(() => (button.textContent = before), 1200);
}

// ---- the journal ----

ui.readJournal.addEventListener("click", () => void readJournal());

/** Shows the entry of the last call's journal key, read back through JournalService. */
async function readJournal(): Promise<void> {
  const key = journalKey;
  showTab("journal");
  ui.journalEntry.textContent = "Reading the journal…";
  ui.readJournal.disabled = true;
  try {
    const entry = await readJournalEntry(gateway, key, () => {
      if (key === journalKey) ui.journalEntry.textContent = "Waiting for the journal writer…";
    });
    if (key === journalKey) ui.journalEntry.textContent = describeEntry(entry);
  } catch (error) {
    const failure = describeFailure(error, gateway.baseUrl);
    const hint = failure.code === Code.NotFound ? "\n\nCalls refused before they started (a bad key, a rate limit) are not journaled." : "";
    if (key === journalKey) ui.journalEntry.textContent = `${failure.codeName} (gRPC ${failure.code}): ${failure.description}${hint}`;
  } finally {
    ui.readJournal.disabled = journalKey === "";
  }
}

// ---- views ----

const views = { answer: ui.output, raw: ui.raw, journal: ui.journalEntry } as const;
type View = keyof typeof views;
for (const name of Object.keys(views) as View[]) ui.tabs[name].addEventListener("click", () => showTab(name));

function showTab(shown: View): void {
  for (const name of Object.keys(views) as View[]) {
    ui.tabs[name].setAttribute("aria-selected", String(name === shown));
    views[name].hidden = name !== shown;
  }
}

bodyChanged();
void loadProviders();
