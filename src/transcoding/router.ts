import { matchPathTemplate, splitRequestPath, type PathTemplate } from "./path-template.js";

export interface Route<T> {
  readonly httpMethod: string;
  readonly template: PathTemplate;
  readonly target: T;
}

/** A route for the request, or the methods allowed on a path that matched no route's method. */
export type RouteMatch<T> =
  | { readonly route: Route<T>; readonly values: string[]; readonly allow?: undefined }
  | { readonly route?: undefined; readonly allow: string[] };

export interface Router<T> {
  /** Finds the route for a request path (without query); undefined when no template matches the path. */
  find(httpMethod: string, path: string): RouteMatch<T> | undefined;
}

/**
 * Builds a router. Routes are indexed by their first literal segment and tried most specific
 * first (more literal segments, then without `**`), so a lookup costs a map get and a few
 * segment comparisons; nothing is compiled per request.
 */
export function createRouter<T>(routes: readonly Route<T>[]): Router<T> {
  const sorted = routes
    .map((route, index) => ({ route, index }))
    .sort((a, b) => specificity(b.route.template) - specificity(a.route.template) || a.index - b.index)
    .map(({ route }) => route);
  const byFirstLiteral = new Map<string, Route<T>[]>();
  const others: Route<T>[] = [];
  for (const route of sorted) {
    const first = route.template.segments[0];
    // The verb may end the first request segment ("/a:v" for "/a:v" or "/a/**:v"): such a
    // route cannot be found by that segment's text.
    const fixed = route.template.segments.length - (route.template.endsWithMulti ? 1 : 0);
    const verbOnFirst = fixed === 1 && route.template.verb !== undefined;
    if (first?.kind === "literal" && !verbOnFirst) {
      let list = byFirstLiteral.get(first.value);
      if (list === undefined) byFirstLiteral.set(first.value, (list = []));
      list.push(route);
    } else {
      others.push(route);
    }
  }
  // Each list also holds the routes whose first segment is not a literal, in order.
  for (const [literal, list] of byFirstLiteral) {
    byFirstLiteral.set(literal, list.concat(others));
  }

  return {
    find(httpMethod, path) {
      const segments = splitRequestPath(path);
      let firstSegment = segments.length > 0 ? segments[0] : "";
      if (firstSegment.includes("%")) firstSegment = safeDecode(firstSegment);
      let allow: string[] | undefined;
      for (const route of byFirstLiteral.get(firstSegment) ?? others) {
        const values = matchPathTemplate(route.template, segments);
        if (values === undefined) continue;
        if (route.httpMethod === httpMethod) return { route, values };
        allow ??= [];
        if (!allow.includes(route.httpMethod)) allow.push(route.httpMethod);
      }
      return allow === undefined ? undefined : { allow };
    },
  };
}

function specificity(template: PathTemplate): number {
  let literals = 0;
  for (const segment of template.segments) {
    if (segment.kind === "literal") literals++;
  }
  return literals * 4 + (template.verb !== undefined ? 2 : 0) + (template.endsWithMulti ? 0 : 1);
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
