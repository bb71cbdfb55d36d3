/**
 * Masks the DataRows of one statement's results, column by column, streaming
 * (one row at a time, never the whole result).
 *
 * For each RowDescription the plan of every column is fixed:
 * - a base column (table OID + attribute number) that the sensitive map says is
 *   sensitive → masked as its type with the type's masker;
 * - a computed column (no table OID) while the statement computes from
 *   sensitive values → masked as a whole (`computedType`): fail-closed, a
 *   computed column that happens not to carry sensitive data is masked too;
 * - any other column → scanned by the `sensitive.detect` detectors, when set.
 * A value that cannot be masked in its type becomes NULL, never the original.
 */
import type { MaskerName } from '../config/types.js';
import type { RowRewriter } from '../contract/statement-hooks.js';
import { decodeDataRow, encodeDataRow, type FieldDescription, type PgErrorFields } from '../wire/index.js';
import { scrubError } from './scrub.js';
import { provablyValueFree, recordedMessage, reducedMessage, requestId } from './messages.js';
import { maskCell, maskCellSpans, TYPE_OIDS } from './cell.js';
import { CopyMasker, type CopyMaskOptions } from './copy-out.js';
import { hiddenValueType } from './normalised.js';
import type { SensitiveColumnMap } from './sensitive-catalog.js';

export interface RowMaskerOptions {
  readonly map: SensitiveColumnMap;
  /** Type to mask computed columns as; null when the statement computes nothing from sensitive values. */
  readonly computedType: string | null;
  readonly detect: readonly string[];
  readonly key: Buffer;
  readonly maskerFor: (type: string) => MaskerName;
  /** Scrub values out of the statement's error (it touches sensitive columns). */
  readonly scrubErrors?: boolean;
  /**
   * Withhold the texts of the statement's errors and notices (it may see sensitive or scanned
   * data: messages.ts): the client gets the SQLSTATE and a generic message with a request id.
   */
  readonly withholdMessages?: boolean;
  /** A notice was withheld: its masked record and request id (for the log). */
  readonly onWithheldNotice?: (record: PgErrorFields, id: string) => void;
  /** COPY ... TO output: its fields are masked by this (copy-out.ts). */
  readonly copy?: CopyMaskOptions;
  /** Computed text columns are also scanned in normalised forms (normalised.ts): the statement reads tables. */
  readonly deepScanComputed?: boolean;
  /** Called once per result set with the number of masked columns (for the audit). */
  readonly onPlan?: (masked: readonly string[]) => void;
}

type Plan = { kind: 'mask'; type: string; masker: MaskerName; typeOid: number; format: 0 | 1 } | { kind: 'scan'; typeOid: number; format: 0 | 1; deep: boolean } | null;

/** Types whose text-format cells the normalised scan reads. */
const DEEP_SCANNED: ReadonlySet<number> = new Set([TYPE_OIDS.text, TYPE_OIDS.varchar, TYPE_OIDS.bpchar, TYPE_OIDS.name, TYPE_OIDS.unknown, TYPE_OIDS.json, 1009, 1015]);
/** Types whose binary-format cells are their UTF-8 text. */
const DEEP_SCANNED_BINARY: ReadonlySet<number> = new Set([TYPE_OIDS.text, TYPE_OIDS.varchar, TYPE_OIDS.bpchar, TYPE_OIDS.name, TYPE_OIDS.unknown, TYPE_OIDS.json]);

export class RowMasker implements RowRewriter {
  #plans: Plan[] = [];
  #active = false;

  constructor(private readonly o: RowMaskerOptions) {
    this.#initCopy();
  }

  describe(fields: readonly FieldDescription[]): void {
    const masked: string[] = [];
    this.#plans = fields.map((f) => {
      const format = (f.format === 1 ? 1 : 0) as 0 | 1;
      let type: string | null | undefined = null;
      if (f.tableOid !== 0 && f.columnAttr > 0) type = this.o.map.lookup(f.tableOid, f.columnAttr);
      else if (f.tableOid === 0 || f.columnAttr <= 0) type = this.o.computedType;
      if (typeof type === 'string') {
        masked.push(f.name);
        return { kind: 'mask', type, masker: this.o.maskerFor(type), typeOid: f.typeOid, format };
      }
      const deep =
        this.o.deepScanComputed === true && f.tableOid === 0 && (format === 0 ? DEEP_SCANNED.has(f.typeOid) : DEEP_SCANNED_BINARY.has(f.typeOid));
      return this.o.detect.length > 0 ? { kind: 'scan', typeOid: f.typeOid, format, deep } : null;
    });
    this.#active = this.#plans.some((p) => p !== null);
    this.o.onPlan?.(masked);
  }

  /** The record of the error last withheld (see recordError). */
  #record: PgErrorFields | undefined;

  error(fields: PgErrorFields): PgErrorFields | undefined {
    this.#record = undefined;
    if (this.o.withholdMessages && !provablyValueFree(fields)) {
      const id = requestId();
      this.#record = recordedMessage(fields, id, this.o.key, this.o.maskerFor);
      return reducedMessage(fields, id);
    }
    return this.o.scrubErrors ? scrubError(fields, this.o.key, this.o.maskerFor) : undefined;
  }

  recordError(): PgErrorFields | undefined {
    return this.#record;
  }

  notice(fields: PgErrorFields): PgErrorFields | undefined {
    if (!this.o.withholdMessages) return undefined;
    const id = requestId();
    this.o.onWithheldNotice?.(recordedMessage(fields, id, this.o.key, this.o.maskerFor), id);
    return reducedMessage(fields, id);
  }

  #copy: CopyMasker | undefined;
  #copyBinary = false;

  /** Set only for a COPY ... TO (the tracker then hands over its CopyData). */
  copyOut?: (format: number, columns: number) => void;
  copyData?: (raw: Buffer, body: Buffer) => Buffer | null;

  #initCopy(): void {
    const copy = this.o.copy;
    if (!copy) return;
    this.copyOut = (format) => {
      this.#copyBinary = format !== 0;
      this.#copy = new CopyMasker(copy);
    };
    this.copyData = (raw, body) => {
      // Binary COPY is refused before it runs; should one come anyway, none of its data passes.
      if (this.#copyBinary || !this.#copy) return null;
      const out = this.#copy.row(body);
      if (!out) return raw;
      const msg = Buffer.allocUnsafe(5 + out.length);
      msg[0] = 0x64; // 'd' CopyData
      msg.writeInt32BE(4 + out.length, 1);
      out.copy(msg, 5);
      return msg;
    };
  }

  rewrite(raw: Buffer, body: Buffer): Buffer {
    if (!this.#active) return raw;
    const cells = decodeDataRow(body);
    let changed = false;
    for (let i = 0; i < cells.length; i++) {
      const cell = cells[i];
      const plan = this.#plans[i];
      if (cell === null || cell === undefined || !plan) continue;
      if (plan.kind === 'mask') {
        cells[i] = maskCell(cell, plan.typeOid, plan.format, plan.type, plan.masker, this.o.key);
        changed = true;
      } else {
        const out = maskCellSpans(cell, plan.typeOid, plan.format, this.o.detect, this.o.key, this.o.maskerFor);
        if (out === cell && plan.deep) {
          // Bent out of shape (separators removed, case changed, reversed): masked whole.
          const hidden = hiddenValueType(cell.toString('utf8'), this.o.detect);
          if (hidden !== undefined) {
            cells[i] = maskCell(cell, plan.typeOid, plan.format, hidden, this.o.maskerFor(hidden), this.o.key);
            changed = true;
            continue;
          }
        }
        if (out !== cell) {
          cells[i] = out;
          changed = true;
        }
      }
    }
    return changed ? encodeDataRow(cells) : raw;
  }
}
