/**
 * The built-in providers (SPEC section 4). Each is enabled when the environment variable that
 * holds its key is set; `ollama` needs no key and is always enabled; `googlevertex` is
 * enabled when GOOGLE_CLOUD_PROJECT is set and authenticates with application default
 * credentials. A provider in the configuration file with the same name overrides one here.
 */
export interface BuiltinProvider {
  name: string;
  baseUrl: string;
  apiKeyEnv?: string;
  credential?: "apiKey" | "google" | "none";
}

export function builtinProviders(env: NodeJS.ProcessEnv): BuiltinProvider[] {
  const vertexLocation = env.GOOGLE_CLOUD_LOCATION || "us-central1";
  const vertexProject = env.GOOGLE_CLOUD_PROJECT;
  return [
    { name: "openai", baseUrl: "https://api.openai.com/v1", apiKeyEnv: "OPENAI_API_KEY" },
    { name: "googleai", baseUrl: "https://generativelanguage.googleapis.com/v1beta/openai", apiKeyEnv: "GEMINI_API_KEY" },
    { name: "anthropic", baseUrl: "https://api.anthropic.com/v1", apiKeyEnv: "ANTHROPIC_API_KEY" },
    { name: "mistral", baseUrl: "https://api.mistral.ai/v1", apiKeyEnv: "MISTRAL_API_KEY" },
    { name: "cohere", baseUrl: "https://api.cohere.ai/compatibility/v1", apiKeyEnv: "COHERE_API_KEY" },
    { name: "fireworks", baseUrl: "https://api.fireworks.ai/inference/v1", apiKeyEnv: "FIREWORKS_API_KEY" },
    { name: "togetherai", baseUrl: "https://api.together.xyz/v1", apiKeyEnv: "TOGETHER_API_KEY" },
    { name: "metaai", baseUrl: "https://api.llama.com/compat/v1", apiKeyEnv: "LLAMA_API_KEY" },
    { name: "deepseek", baseUrl: "https://api.deepseek.com/v1", apiKeyEnv: "DEEPSEEK_API_KEY" },
    { name: "groq", baseUrl: "https://api.groq.com/openai/v1", apiKeyEnv: "GROQ_API_KEY" },
    { name: "ollama", baseUrl: "http://127.0.0.1:11434/v1", credential: "none" },
    ...(vertexProject
      ? [
          {
            name: "googlevertex",
            baseUrl: `https://${vertexLocation}-aiplatform.googleapis.com/v1/projects/${vertexProject}/locations/${vertexLocation}/endpoints/openapi`,
            credential: "google" as const,
          },
        ]
      : []),
  ];
}
