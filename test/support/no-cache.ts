/** SPEC section 9's headers, as every response must carry them (spelled out, not imported from src). */
export const NO_CACHE = {
  "cache-control": "no-cache, no-store, must-revalidate, private, max-age=0",
  pragma: "no-cache",
  expires: "0",
};
