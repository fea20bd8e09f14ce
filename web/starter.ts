/** A model each built-in provider serves, for its starter body; another provider gets a placeholder. */
const MODELS: Readonly<Record<string, string>> = {
  openai: "gpt-4o-mini",
  googleai: "gemini-2.0-flash",
  googlevertex: "google/gemini-2.0-flash",
  anthropic: "claude-3-5-haiku-latest",
  mistral: "mistral-small-latest",
  cohere: "command-r",
  fireworks: "accounts/fireworks/models/llama-v3p1-8b-instruct",
  togetherai: "meta-llama/Llama-3.3-70B-Instruct-Turbo",
  metaai: "Llama-3.3-8B-Instruct",
  deepseek: "deepseek-chat",
  groq: "llama-3.1-8b-instant",
  ollama: "llama3.2",
};

/** The chat-completion body a provider's picker starts with, as the editor shows it. */
export function starterBody(provider: string): string {
  const body = {
    model: MODELS[provider] ?? "your-model",
    messages: [
      { role: "system", content: "You are a concise assistant." },
      { role: "user", content: "Say hello in three languages." },
    ],
  };
  return JSON.stringify(body, null, 2);
}
