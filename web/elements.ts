const byId = <T extends HTMLElement>(id: string): T => {
  const element = document.getElementById(id);
  if (element === null) throw new Error(`the page has no #${id}`);
  return element as T;
};
/** The page's elements by role; a missing one fails at load, not on first use. */
export const ui = {
  gatewayUrl: byId("gateway-url"),
  apiKey: byId<HTMLInputElement>("api-key"),
  toggleKey: byId<HTMLButtonElement>("toggle-key"),
  provider: byId<HTMLSelectElement>("provider"),
  providersState: byId("providers-state"),
  streamMode: byId<HTMLInputElement>("mode-stream"),
  body: byId<HTMLTextAreaElement>("body"),
  bodyState: byId("body-state"),
  formatBody: byId<HTMLButtonElement>("format-body"),
  resetBody: byId<HTMLButtonElement>("reset-body"),
  send: byId<HTMLButtonElement>("send"),
  stop: byId<HTMLButtonElement>("stop"),
  status: byId("status"),
  code: byId("code"),
  firstChunk: byId("first-chunk"),
  total: byId("total"),
  chunkCount: byId("chunk-count"),
  error: byId("error"),
  errorCode: byId("error-code"),
  errorMessage: byId("error-message"),
  journalKey: byId("journal-key"),
  copyKey: byId<HTMLButtonElement>("copy-key"),
  readJournal: byId<HTMLButtonElement>("read-journal"),
  output: byId("output"),
  raw: byId("raw"),
  journalEntry: byId("journal-entry"),
  tabs: { answer: byId("tab-answer"), raw: byId("tab-raw"), journal: byId("tab-journal") },
};
