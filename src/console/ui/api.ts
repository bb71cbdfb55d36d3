/**
 * Calls to the admin API with the console's session cookie (sent by the browser; HttpOnly, so
 * no script reads it) and, on state-changing requests, the session's CSRF token in a header.
 * Nothing secret or masked is ever put in a URL: searches, SQL and reasons travel in bodies.
 */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

let csrf = '';
let onUnauthorized: (message: string) => void = () => undefined;

export function setCsrf(token: string): void {
  csrf = token;
}

export function whenUnauthorized(f: (message: string) => void): void {
  onUnauthorized = f;
}

async function errorOf(res: Response): Promise<ApiError> {
  let message = `${res.status} ${res.statusText}`;
  try {
    const body = (await res.json()) as { error?: string };
    if (body.error) message = body.error;
  } catch {
    /* not JSON */
  }
  return new ApiError(res.status, message);
}

export async function request(method: string, path: string, body?: unknown): Promise<Response> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && method !== 'HEAD') headers['x-warden-csrf'] = csrf;
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin', cache: 'no-store', redirect: 'error' });
  if (!res.ok) {
    const err = await errorOf(res);
    if (res.status === 401 && !path.startsWith('/console/api/login')) onUnauthorized(err.message);
    throw err;
  }
  return res;
}

export async function get<T>(path: string): Promise<T> {
  return (await (await request('GET', path)).json()) as T;
}

export async function post<T>(path: string, body: unknown = {}): Promise<T> {
  return (await (await request('POST', path, body)).json()) as T;
}
