/**
 * The `time` match key: weekdays and hours in a time zone.
 *
 * `days`: `mon`..`sun` (or full names), ranges such as `mon-fri`, and the
 * shorthands `weekdays` / `weekends`. `hours`: `HH:MM-HH:MM`, start inclusive,
 * end exclusive; a window whose end is before its start wraps past midnight
 * (`22:00-06:00`), and days are checked against the local day of the moment
 * being tested. `tz`: an IANA time zone (default `UTC`).
 *
 * @module
 */
import { PolicyError } from './patterns.js';

const DAY_NAMES = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;
const FULL: Record<string, number> = {
  tues: 2,
  thur: 4,
  thurs: 4,
  sunday: 0,
  monday: 1,
  tuesday: 2,
  wednesday: 3,
  thursday: 4,
  friday: 5,
  saturday: 6,
};

function dayIndex(s: string): number {
  const t = s.trim().toLowerCase();
  const i = DAY_NAMES.indexOf(t as (typeof DAY_NAMES)[number]);
  if (i >= 0) return i;
  if (t in FULL) return FULL[t]!;
  throw new PolicyError(`unknown day ${JSON.stringify(s)} (use mon, tue, wed, thu, fri, sat, sun)`);
}

function parseDays(days: readonly string[]): Set<number> {
  const out = new Set<number>();
  for (const d of days) {
    const t = d.trim().toLowerCase();
    if (t === 'weekdays') [1, 2, 3, 4, 5].forEach((x) => out.add(x));
    else if (t === 'weekends') [0, 6].forEach((x) => out.add(x));
    else if (t.includes('-')) {
      const [a, b] = t.split('-');
      const from = dayIndex(a ?? '');
      const to = dayIndex(b ?? '');
      for (let i = from; ; i = (i + 1) % 7) {
        out.add(i);
        if (i === to) break;
      }
    } else out.add(dayIndex(t));
  }
  return out;
}

function parseClock(s: string, allow24: boolean): number {
  const m = /^(\d{1,2})(?::(\d{2}))?$/.exec(s.trim());
  if (!m) throw new PolicyError(`invalid time ${JSON.stringify(s)} (use HH:MM)`);
  const h = Number(m[1]);
  const min = Number(m[2] ?? '0');
  if (min > 59 || h > 24 || (h === 24 && (min !== 0 || !allow24))) throw new PolicyError(`invalid time ${JSON.stringify(s)}`);
  return h * 60 + min;
}

/** A compiled `time` condition. */
export interface TimeWindow {
  readonly text: string;
  /** Whether `now` is inside the window; `local` describes the local time for explanations. */
  test(now: Date): { inside: boolean; local: string };
}

/** Compiles `{ days?, hours?, tz? }`. Throws {@link PolicyError} when invalid. */
export function compileTime(t: { days?: string[]; hours?: string; tz?: string }): TimeWindow {
  const tz = t.tz ?? 'UTC';
  let fmt: Intl.DateTimeFormat;
  try {
    fmt = new Intl.DateTimeFormat('en-US', {
      timeZone: tz,
      weekday: 'short',
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
    });
  } catch {
    throw new PolicyError(`unknown time zone ${JSON.stringify(tz)}`);
  }
  const days = t.days && t.days.length ? parseDays(t.days) : undefined;
  let start: number | undefined;
  let end: number | undefined;
  if (t.hours !== undefined) {
    const m = /^\s*([^-]+?)\s*-\s*([^-]+?)\s*$/.exec(t.hours);
    if (!m) throw new PolicyError(`invalid hours ${JSON.stringify(t.hours)} (use HH:MM-HH:MM)`);
    start = parseClock(m[1]!, false);
    end = parseClock(m[2]!, true);
    if (start === end) throw new PolicyError(`empty hours window ${JSON.stringify(t.hours)}`);
  }
  const text = [t.days?.join(',') ?? '', t.hours ?? '', tz].filter(Boolean).join(' ');
  return {
    text,
    test(now: Date) {
      const parts = fmt.formatToParts(now);
      const wd = parts.find((p) => p.type === 'weekday')?.value.toLowerCase() ?? '';
      const hh = Number(parts.find((p) => p.type === 'hour')?.value ?? '0') % 24;
      const mm = Number(parts.find((p) => p.type === 'minute')?.value ?? '0');
      const minutes = hh * 60 + mm;
      const day = DAY_NAMES.indexOf(wd.slice(0, 3) as (typeof DAY_NAMES)[number]);
      const local = `${wd.slice(0, 3)} ${String(hh).padStart(2, '0')}:${String(mm).padStart(2, '0')} ${tz}`;
      let inside = true;
      if (days && !days.has(day)) inside = false;
      if (start !== undefined && end !== undefined) {
        const inHours = start < end ? minutes >= start && minutes < end : minutes >= start || minutes < end;
        if (!inHours) inside = false;
      }
      return { inside, local };
    },
  };
}
