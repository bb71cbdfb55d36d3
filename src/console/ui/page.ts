/** What every console page gets and gives back (main.ts shows them; the pages import only this). */
import type { Me } from './types.js';

export interface Page {
  /** Stops timers and streams when another page is shown. */
  stop(): void;
}

export interface Ctx {
  me: Me;
  /** Shows a page by its key. */
  go(page: PageKey, arg?: string): void;
  /** Announces a message to screen readers and shows it in the status bar. */
  status(text: string, kind?: 'ok' | 'error'): void;
}

export type PageKey = 'overview' | 'approvals' | 'sessions' | 'audit' | 'policy' | 'reports';
