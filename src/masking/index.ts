/**
 * Value masking for query results: detectors for sensitive values inside text, maskers for
 * text values, and type-preserving masking of wire cells. Pure functions, no I/O.
 *
 *   findSensitive(text, detect)             spans of sensitive values inside free text
 *   maskText(value, type, masker, key)      one text value (null = SQL NULL)
 *   maskSpans(text, spans, key, maskerFor)  the spans of a larger text
 *   maskCell(raw, oid, format, type, ...)   one DataRow cell of a classified column
 *   maskCellSpans(raw, oid, format, ...)    one cell of an unclassified column (raw if clean)
 */
export { DETECTORS, type DetectorName, type SensitiveSpan, findSensitive, isDetectorName } from './detectors.js';
export { type MaskKey, type TypedSpan, deriveMaskKey, hashText, maskSpans, maskText, partialText, redactText } from './maskers.js';
export { ARRAY_ELEMENT_OIDS, FIRST_USER_OID, TYPE_OIDS, maskCell, maskCellSpans } from './cell.js';
export { canonicalType } from './random.js';
