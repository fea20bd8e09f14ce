/** Reading the text out of chat-completion answers and chunks, whatever else they hold. */

type Json = { [key: string]: unknown };

const firstChoice = (value: unknown): Json | undefined => {
  const choices = (value as Json | undefined)?.choices;
  return Array.isArray(choices) && typeof choices[0] === "object" && choices[0] !== null ? (choices[0] as Json) : undefined;
};

/** The text a `chat.completion.chunk` adds (its first choice's `delta.content`), or "". */
export function chunkText(chunk: unknown): string {
  const content = (firstChoice(chunk)?.delta as Json | undefined)?.content;
  return typeof content === "string" ? content : "";
}

/** A whole `chat.completion`'s text (its first choice's `message.content`), or "". */
export function answerText(answer: unknown): string {
  const content = (firstChoice(answer)?.message as Json | undefined)?.content;
  return typeof content === "string" ? content : "";
}
