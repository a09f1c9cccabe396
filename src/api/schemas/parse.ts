import { z, type ZodIssue, type ZodTypeAny } from 'zod';
import { extendZodWithOpenApi } from '@asteasolutions/zod-to-openapi';
import { InvalidInputError } from '../../errors.js';

// Every schema of the API gets .openapi(): the one place zod is extended.
extendZodWithOpenApi(z);
export { z };

/**
 * How a schema's refusal reads: the API's error body `{"error":{"code","message","field"}}` with
 * the codes and messages the hand-written checks had. Each leaf schema carries its own builder;
 * zod says *whether* a value is good, the builder says *how* the refusal reads.
 */
export type FieldError = (field: string, value: unknown, issue: ZodIssue) => InvalidInputError;

const builders = new WeakMap<ZodTypeAny, FieldError>();

/** Attaches the refusal's wording to a schema (call it last, after .openapi()). */
export function refusedAs<T extends ZodTypeAny>(schema: T, build: FieldError): T {
  builders.set(schema, build);
  return schema;
}

/** A JSON integer within bounds; refused as INVALID_NUMBER (not one) or OUT_OF_RANGE (outside). */
export function jsonIntSchema(min: number, max: number, description?: string): z.ZodNumber {
  const schema = z.number().int().min(min).max(max).openapi({ description });
  return refusedAs(schema, (field, value) => intError(field, value, min, max));
}

export function intError(field: string, value: unknown, min: number, max: number): InvalidInputError {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) {
    return new InvalidInputError('INVALID_NUMBER', field, `${field} must be a JSON integer from ${min} to ${max} (no quotes, no fraction, no exponent), got ${JSON.stringify(value)}`);
  }
  return new InvalidInputError('OUT_OF_RANGE', field, `${field} must be from ${min} to ${max}, got ${value}`);
}

/** What a strict object says of a field it does not have. */
export type UnknownField = (field: string, allowed: string[]) => InvalidInputError;

export const unknownField: UnknownField = (field, allowed) => new InvalidInputError('UNKNOWN_FIELD', field, `unknown field '${field}'; allowed: ${allowed.join(', ')}`);

export interface ParseOptions {
  /** Checks across fields, run after the unknown-field check and before the fields' own. */
  across?: (record: Record<string, unknown>) => void;
  unknown?: UnknownField;
}

/**
 * Parses `value` with `schema`, or throws the first refusal in the order the hand-written checks
 * had: the body's shape, its unknown fields, the checks across fields, then each field in the
 * schema's order (a nested object's unknown fields ahead of its own fields).
 */
export function parseWith<S extends ZodTypeAny>(schema: S, value: unknown, options: ParseOptions = {}): z.output<S> {
  const result = schema.safeParse(value);
  const issues = result.success ? [] : ordered(schema, result.error.issues);
  const rootIssue = issues.find((i) => i.path.length === 0);
  if (rootIssue) throw refusal(schema, value, rootIssue, options);
  if (options.across) options.across(value as Record<string, unknown>);
  if (issues.length > 0) throw refusal(schema, value, issues[0], options);
  return (result as { data: z.output<S> }).data;
}

/** Root issues first, then by the position of the field in the schema, unknown keys first within one. */
function ordered(schema: ZodTypeAny, issues: ZodIssue[]): ZodIssue[] {
  const keys = shapeKeys(schema);
  const rank = (i: ZodIssue) => (i.path.length === 0 ? -1 : keys.indexOf(String(i.path[0]))) * 2 + (i.code === 'unrecognized_keys' ? 0 : 1);
  return [...issues].sort((a, b) => rank(a) - rank(b));
}

function refusal(schema: ZodTypeAny, root: unknown, issue: ZodIssue, options: ParseOptions): InvalidInputError {
  let node = unwrap(schema);
  let value = root;
  for (const step of issue.path) {
    const shape = shapeOf(node);
    node = unwrap(shape?.[String(step)] ?? node);
    value = (value as Record<string, unknown> | undefined)?.[String(step)];
  }
  const prefix = issue.path.map(String).join('.');
  if (issue.code === 'unrecognized_keys') {
    const field = prefix ? `${prefix}.${issue.keys[0]}` : issue.keys[0];
    return (options.unknown && !prefix ? options.unknown : unknownField)(field, shapeKeys(node));
  }
  const build = builders.get(node) ?? builders.get(schema);
  if (build) return build(prefix || 'body', value, issue);
  return new InvalidInputError('INVALID_INPUT', prefix || 'body', `${prefix || 'body'}: ${issue.message}`);
}

/** The schema under optional, nullable, default and refinements, where the builder is kept. */
function unwrap(schema: ZodTypeAny): ZodTypeAny {
  let s = schema;
  for (;;) {
    if (builders.has(s)) return s;
    if (s instanceof z.ZodOptional || s instanceof z.ZodNullable || s instanceof z.ZodDefault) s = s._def.innerType as ZodTypeAny;
    else if (s instanceof z.ZodEffects) s = s._def.schema as ZodTypeAny;
    else return s;
  }
}

function shapeOf(schema: ZodTypeAny): Record<string, ZodTypeAny> | undefined {
  const s = unwrap(schema);
  if (s instanceof z.ZodObject) return s.shape as Record<string, ZodTypeAny>;
  // A builder sits on the object itself: look one level under it.
  const inner = s instanceof z.ZodEffects ? (s._def.schema as ZodTypeAny) : undefined;
  return inner instanceof z.ZodObject ? (inner.shape as Record<string, ZodTypeAny>) : undefined;
}

function shapeKeys(schema: ZodTypeAny): string[] {
  return Object.keys(shapeOf(schema) ?? {});
}
